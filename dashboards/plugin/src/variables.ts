import {
  CustomVariableSupport,
  DataQueryRequest,
  DataQueryResponse,
  FieldType,
  ScopedVars,
  createDataFrame,
} from '@grafana/data';
import { getTemplateSrv } from '@grafana/runtime';
import { Observable, from } from 'rxjs';

import type { DataSource } from './datasource';
import { VariableQueryEditor } from './components/VariableQueryEditor';
import { RESOURCES, ResourceName, StatepipeVariableQuery } from './types';

/**
 * resourceOf reads a template variable's query: {"resource": "lists"} (what the variable
 * editor writes and the provisioned dashboards carry), or a bare resource name as a string.
 * Anything else is an error naming what was given.
 */
export function resourceOf(query: StatepipeVariableQuery | string | undefined): ResourceName {
  const name = typeof query === 'string' ? query.trim() : query?.resource;
  if (!name || !(RESOURCES as readonly string[]).includes(name)) {
    throw new Error(
      `statepipe variable query: resource ${JSON.stringify(name ?? null)}: want one of ${RESOURCES.join(', ')}`
    );
  }
  return name as ResourceName;
}

/**
 * Template variables of a statepipe datasource list the backend's resources: sites, update
 * lists, collections or deployments. The variable's query JSON is {"resource": "lists"} (or
 * "sites", "collections", "deployments"); its values are the entries' ids, shown by name.
 */
export class StatepipeVariableSupport extends CustomVariableSupport<DataSource, StatepipeVariableQuery> {
  editor = VariableQueryEditor;

  constructor(private readonly datasource: DataSource) {
    super();
  }

  query(request: DataQueryRequest<StatepipeVariableQuery>): Observable<DataQueryResponse> {
    return from(this.run(request.targets[0], request.scopedVars));
  }

  private async run(
    query: StatepipeVariableQuery | string | undefined,
    scopedVars: ScopedVars
  ): Promise<DataQueryResponse> {
    const resource = resourceOf(query);
    const site = typeof query === 'object' && query.site ? getTemplateSrv().replace(query.site, scopedVars).trim() : '';
    const items = await this.datasource.listResource(resource, site || undefined);
    const frame = createDataFrame({
      fields: [
        { name: 'text', type: FieldType.string, values: items.map((i) => i.text || i.value) },
        { name: 'value', type: FieldType.string, values: items.map((i) => i.value) },
      ],
    });
    return { data: [frame] };
  }
}
