import React, { ChangeEvent, useEffect, useMemo, useState } from 'react';
import { QueryEditorProps } from '@grafana/data';
import { getTemplateSrv } from '@grafana/runtime';
import { Alert, Combobox, ComboboxOption, InlineField, Input, Stack, Text, TextArea } from '@grafana/ui';

import type { DataSource } from '../datasource';
import { ParamDef, REPORTS, paramProblems, paramsFor, reportDef } from '../reports';
import { QueryType, ResourceItem, ResourceName, StatepipeOptions, StatepipeQuery } from '../types';

type Props = QueryEditorProps<DataSource, StatepipeQuery, StatepipeOptions>;

const REPORT_OPTIONS: Array<ComboboxOption<QueryType>> = REPORTS.map((r) => ({
  value: r.name,
  label: r.name,
  description: r.description,
}));

export const SQL_HINT =
  "One read-only SELECT over the site database's views and tables (schema/README.md), e.g. " +
  'SELECT $__timeGroup(accepted_at, 1h) AS time, count() AS messages FROM state_messages WHERE $__timeFilter(accepted_at) GROUP BY time ORDER BY time. ' +
  "Macros, expanded by the backend in UTC to the second: $__timeFilter(col) — col within the dashboard's range; " +
  '$__timeFrom(), $__timeTo() — its ends; $__timeGroup(col, 5m) — col rounded down to the interval. ' +
  "Variables: $var escaped for a string literal (write '$var' to quote it); a multi-value one as 'a','b' for IN (…).";

/** The entries of the backend's resources the current report's fields offer, fetched once each. */
function useResources(datasource: DataSource, names: ResourceName[]) {
  const [items, setItems] = useState<Partial<Record<ResourceName, ResourceItem[]>>>({});
  const [errors, setErrors] = useState<Partial<Record<ResourceName, string>>>({});
  const wanted = names.filter((n) => items[n] === undefined && errors[n] === undefined).join(',');

  useEffect(() => {
    if (!wanted) {
      return;
    }
    let live = true;
    for (const name of wanted.split(',') as ResourceName[]) {
      datasource.listResource(name).then(
        (list) => live && setItems((m) => ({ ...m, [name]: list })),
        (err) => live && setErrors((m) => ({ ...m, [name]: errorText(err) }))
      );
    }
    return () => {
      live = false;
    };
  }, [datasource, wanted]);

  return { items, errors };
}

export function errorText(err: unknown): string {
  if (err && typeof err === 'object') {
    // the backend's resources answer {"error": {"field", "message"}}
    const e = err as {
      data?: { message?: string; error?: { message?: string } };
      message?: string;
      statusText?: string;
    };
    return e.data?.error?.message || e.data?.message || e.message || e.statusText || 'failed';
  }
  return String(err);
}

/** The dashboard's template variables, offered in every picker as $name. */
function variableOptions(): Array<ComboboxOption<string>> {
  try {
    return getTemplateSrv()
      .getVariables()
      .map((v) => ({ value: `$${v.name}`, label: `$${v.name}`, description: 'template variable' }));
  } catch {
    return [];
  }
}

/**
 * The query editor: a report picker (the report names of GET /v1/reports/NAME, and sql), then
 * the report's parameter fields, written into `params` under the API's names (an emptied field
 * is dropped), or for sql the statement (`rawSql`).
 */
export function QueryEditor({ query, onChange, onRunQuery, datasource }: Props) {
  const def = reportDef(query.queryType);
  const resourceNames = useMemo(() => (def?.params ?? []).flatMap((p) => (p.resource ? [p.resource] : [])), [def]);
  const { items, errors } = useResources(datasource, resourceNames);
  const variables = useMemo(() => variableOptions(), []);

  const onReportChange = (v: ComboboxOption<QueryType>) => {
    if (v.value === query.queryType) {
      return;
    }
    const { rawSql, params, ...rest } = query;
    const next: StatepipeQuery = { ...rest, queryType: v.value, params: paramsFor(v.value, params) };
    if (v.value === 'sql') {
      next.rawSql = rawSql ?? '';
    }
    onChange(next);
    onRunQuery();
  };

  const setParam = (name: string, value: string | undefined, run: boolean) => {
    const params = { ...(query.params ?? {}) };
    if (value === undefined || value === '') {
      delete params[name];
    } else {
      params[name] = value;
    }
    onChange({ ...query, params });
    if (run) {
      onRunQuery();
    }
  };

  const problems = def ? paramProblems(def.name, query.params) : [];

  return (
    <Stack direction="column" gap={1}>
      <InlineField
        label="Report"
        labelWidth={20}
        tooltip="The statepipe report (GET /v1/reports/NAME), or read-only SQL"
      >
        <Combobox<QueryType>
          id="statepipe-report"
          width={40}
          options={REPORT_OPTIONS}
          value={query.queryType ?? null}
          onChange={onReportChange}
          placeholder="Pick a report"
        />
      </InlineField>
      {def && <Text color="secondary">{def.description}</Text>}

      {def?.name === 'sql' && (
        <InlineField label="SQL" labelWidth={20} grow tooltip="The statement POST /v1/sql runs (read-only)">
          <TextArea
            id="statepipe-sql"
            aria-label="SQL"
            rows={8}
            style={{ fontFamily: 'monospace' }}
            value={query.rawSql ?? ''}
            placeholder="SELECT update_id, countIf(state = 2) AS required FROM v_update_compliance WHERE $__timeFilter(time) GROUP BY update_id"
            onChange={(e: ChangeEvent<HTMLTextAreaElement>) => onChange({ ...query, rawSql: e.target.value })}
            onBlur={onRunQuery}
          />
        </InlineField>
      )}
      {def?.name === 'sql' && (
        <Text color="secondary" variant="bodySmall">
          {SQL_HINT}
        </Text>
      )}

      {def?.params.map((p) => (
        <ParamField
          key={`${def.name}.${p.name}`}
          param={p}
          value={query.params?.[p.name] ?? ''}
          onChange={setParam}
          onRunQuery={onRunQuery}
          options={p.resource ? items[p.resource] : undefined}
          loadError={p.resource ? errors[p.resource] : undefined}
          variables={variables}
        />
      ))}
      {def?.note && (
        <Text color="secondary" variant="bodySmall">
          {def.note}
        </Text>
      )}
      {problems.length > 0 && (
        <Alert severity="warning" title="This query is not complete">
          {problems.join('; ')}
        </Alert>
      )}
    </Stack>
  );
}

interface ParamFieldProps {
  param: ParamDef;
  value: string;
  onChange: (name: string, value: string | undefined, run: boolean) => void;
  onRunQuery: () => void;
  options?: ResourceItem[];
  loadError?: string;
  variables: Array<ComboboxOption<string>>;
}

/** One parameter: a picker where there is something to pick from, else a text field. */
function ParamField({ param, value, onChange, onRunQuery, options, loadError, variables }: ParamFieldProps) {
  const id = `statepipe-param-${param.name}`;
  const tooltip = `${param.name}: ${param.help}`;

  if (param.resource || param.choices) {
    // The backend's entries name themselves ("November pilot (D-2026-11)"); the value is the id.
    const choices: Array<ComboboxOption<string>> = param.resource
      ? (options ?? []).map((o) => ({ value: o.value, label: o.text || o.value }))
      : (param.choices ?? []).map((c) => ({ value: c.value, label: c.label }));
    const all = [...choices, ...variables];
    const selected = value ? (all.find((o) => o.value === value) ?? { value, label: value }) : null;
    return (
      <InlineField
        label={param.label}
        required={param.required}
        labelWidth={20}
        tooltip={tooltip}
        invalid={!!loadError}
        error={loadError ? `cannot list ${param.resource}: ${loadError}` : undefined}
      >
        <Combobox<string>
          id={id}
          width={40}
          options={all}
          value={selected}
          isClearable
          createCustomValue
          loading={!!param.resource && options === undefined && !loadError}
          placeholder={param.placeholder ?? (param.required ? 'required' : 'optional')}
          onChange={(v) => onChange(param.name, v?.value, true)}
        />
      </InlineField>
    );
  }
  return (
    <InlineField label={param.label} required={param.required} labelWidth={20} tooltip={tooltip}>
      <Input
        id={id}
        width={40}
        value={value}
        placeholder={param.placeholder ?? (param.required ? 'required' : 'optional')}
        onChange={(e: ChangeEvent<HTMLInputElement>) => onChange(param.name, e.target.value, false)}
        onBlur={onRunQuery}
      />
    </InlineField>
  );
}
