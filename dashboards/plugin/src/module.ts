import { DataSourcePlugin } from '@grafana/data';

import { DataSource } from './datasource';
import { ConfigEditor } from './components/ConfigEditor';
import { QueryEditor } from './components/QueryEditor';
import { StatepipeOptions, StatepipeQuery, StatepipeSecureJsonData } from './types';

export const plugin = new DataSourcePlugin<DataSource, StatepipeQuery, StatepipeOptions, StatepipeSecureJsonData>(
  DataSource
)
  .setConfigEditor(ConfigEditor)
  .setQueryEditor(QueryEditor);
