import React, { ChangeEvent } from 'react';
import { DataSourcePluginOptionsEditorProps } from '@grafana/data';
import { InlineField, Input, SecretInput, Stack } from '@grafana/ui';

import { StatepipeOptions, StatepipeSecureJsonData } from '../types';

type Props = DataSourcePluginOptionsEditorProps<StatepipeOptions, StatepipeSecureJsonData>;

/**
 * The datasource's settings: statepipe's URL and site (jsonData), and the reader token
 * (secureJsonData.token: Grafana keeps it encrypted, hands it to the backend only, and tells the
 * browser just whether one is set). "Save & test" runs the backend's CheckHealth.
 */
export function ConfigEditor({ options, onOptionsChange }: Props) {
  const { jsonData, secureJsonFields, secureJsonData } = options;

  const setJson = (key: 'url' | 'site') => (e: ChangeEvent<HTMLInputElement>) =>
    onOptionsChange({ ...options, jsonData: { ...jsonData, [key]: e.target.value.trim() } });

  const onTokenChange = (e: ChangeEvent<HTMLInputElement>) =>
    onOptionsChange({ ...options, secureJsonData: { ...secureJsonData, token: e.target.value } });

  const onTokenReset = () =>
    onOptionsChange({
      ...options,
      secureJsonFields: { ...secureJsonFields, token: false },
      secureJsonData: { ...secureJsonData, token: '' },
    });

  return (
    <Stack direction="column" gap={0}>
      <InlineField
        label="URL"
        labelWidth={16}
        required
        interactive
        tooltip="statepipe's HTTP API as Grafana's server reaches it (the backend asks it, not the browser)"
      >
        <Input
          id="config-editor-url"
          value={jsonData.url ?? ''}
          onChange={setJson('url')}
          placeholder="http://statepipe:8081"
          width={40}
        />
      </InlineField>
      <InlineField
        label="Site"
        labelWidth={16}
        interactive
        tooltip="The site to report on (site=), e.g. CEN or P01; empty: the site the URL serves. In a hierarchy a query can narrow to a site below it."
      >
        <Input
          id="config-editor-site"
          value={jsonData.site ?? ''}
          onChange={setJson('site')}
          placeholder="the site the URL serves"
          width={40}
        />
      </InlineField>
      <InlineField
        label="Reader token"
        labelWidth={16}
        interactive
        tooltip="The site's --reader-token (STATEPIPE_READER_TOKEN), sent as Authorization: Bearer; empty when the site takes no tokens"
      >
        <SecretInput
          id="config-editor-token"
          isConfigured={!!secureJsonFields?.token}
          value={secureJsonData?.token ?? ''}
          placeholder="reader token"
          width={40}
          onReset={onTokenReset}
          onChange={onTokenChange}
        />
      </InlineField>
    </Stack>
  );
}
