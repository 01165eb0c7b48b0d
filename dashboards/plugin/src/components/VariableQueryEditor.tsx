import React from 'react';
import { DataSourceApi, QueryEditorProps } from '@grafana/data';
import { Combobox, ComboboxOption, InlineField, Input, Stack } from '@grafana/ui';

import { RESOURCES, ResourceName, StatepipeOptions, StatepipeQuery, StatepipeVariableQuery } from '../types';

const DESCRIPTIONS: Record<ResourceName, string> = {
  sites: 'the site the datasource asks and the sites below it',
  lists: 'update lists',
  collections: 'collections of clients',
  deployments: 'deployments',
};

const OPTIONS: Array<ComboboxOption<ResourceName>> = RESOURCES.map((r) => ({
  value: r,
  label: r,
  description: DESCRIPTIONS[r],
}));

type Props = QueryEditorProps<
  DataSourceApi<StatepipeQuery, StatepipeOptions>,
  StatepipeQuery,
  StatepipeOptions,
  StatepipeVariableQuery
>;

/**
 * The editor of a template variable's query: which resource it lists, and optionally at which
 * site ({"resource": "collections", "site": "$site"}).
 */
export function VariableQueryEditor({ query, onChange }: Props) {
  // A bare string is what a hand-written dashboard may carry; show it as the resource it names.
  const base: Partial<StatepipeVariableQuery> = typeof query === 'object' && query !== null ? query : {};
  const current: string | undefined = typeof query === 'string' ? query : base.resource;
  const value = current
    ? (OPTIONS.find((o) => o.value === current) ?? { value: current as ResourceName, label: current })
    : null;

  const write = (patch: Partial<StatepipeVariableQuery>) => {
    const next: StatepipeVariableQuery = {
      ...base,
      refId: base.refId ?? 'A',
      resource: (current ?? 'lists') as ResourceName,
      ...patch,
    };
    if (!next.site) {
      delete next.site;
    }
    onChange(next);
  };

  return (
    <Stack direction="column" gap={0}>
      <InlineField
        label="List"
        labelWidth={14}
        tooltip="The backend resource whose entries become the variable's values"
      >
        <Combobox<ResourceName>
          id="statepipe-variable-resource"
          width={30}
          options={OPTIONS}
          value={value}
          onChange={(v) => write({ resource: v.value })}
        />
      </InlineField>
      <InlineField
        label="Site"
        labelWidth={14}
        tooltip="Ask this site of the hierarchy (template variables allowed, e.g. $site); empty: the datasource's site"
      >
        <Input
          id="statepipe-variable-site"
          width={30}
          defaultValue={base.site ?? ''}
          placeholder="datasource's site"
          onBlur={(e: React.FocusEvent<HTMLInputElement>) => {
            const site = e.currentTarget.value.trim();
            if (site !== (base.site ?? '')) {
              write({ site });
            }
          }}
        />
      </InlineField>
    </Stack>
  );
}
