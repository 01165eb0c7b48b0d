import { CoreApp, DataSourceInstanceSettings, ScopedVars } from '@grafana/data';
import { DataSourceWithBackend, getTemplateSrv } from '@grafana/runtime';

import { StatepipeVariableSupport } from './variables';
import { ReportParams, ResourceItem, ResourceName, StatepipeOptions, StatepipeQuery } from './types';

/** The parameters whose value is a comma-separated list, so a multi-value variable joins with commas. */
const CSV_PARAMS = new Set(['updates']);

/**
 * sqlText escapes a value for the inside of a ClickHouse string literal: a backslash is
 * ClickHouse's escape character, so it is doubled (else a value ending in a backslash would
 * escape the closing quote, and the next value's text would be read as SQL), and ' is doubled.
 */
export function sqlText(value: unknown): string {
  return String(value ?? '')
    .replace(/\\/g, '\\\\')
    .replace(/'/g, "''");
}

/**
 * sqlValue formats a variable's value inside rawSql: one value escaped for a string literal
 * (write '$site' to quote it; a number or an id stays as it is), several (a multi-value
 * variable, or All) each quoted, joined by commas, for `IN (${lists})` — and one value of a
 * multi-value variable quoted likewise, so `IN ($lists)` holds whatever is selected.
 */
export function sqlValue(value: unknown, variable?: { multi?: boolean; includeAll?: boolean }): string {
  if (Array.isArray(value)) {
    return value.map((v) => `'${sqlText(v)}'`).join(',');
  }
  if (variable?.multi || variable?.includeAll) {
    return `'${sqlText(value)}'`;
  }
  return sqlText(value);
}

/**
 * The statepipe datasource's frontend. Queries run in the backend (pkg/plugin), which talks to
 * statepipe's HTTP API; here the editors build them and template variables are interpolated, so
 * what reaches the backend — and what an alert rule stores — is self-contained.
 */
export class DataSource extends DataSourceWithBackend<StatepipeQuery, StatepipeOptions> {
  constructor(instanceSettings: DataSourceInstanceSettings<StatepipeOptions>) {
    super(instanceSettings);
    this.variables = new StatepipeVariableSupport(this);
  }

  getDefaultQuery(_: CoreApp): Partial<StatepipeQuery> {
    return { queryType: 'compliance', params: {} };
  }

  /**
   * Interpolates template variables in every value of params and in rawSql, and drops the
   * parameters left empty (an unset variable must not send `collection=`).
   */
  applyTemplateVariables(query: StatepipeQuery, scopedVars: ScopedVars): StatepipeQuery {
    const templateSrv = getTemplateSrv();
    const out: StatepipeQuery = { ...query };
    if (query.params) {
      const params: ReportParams = {};
      for (const [name, value] of Object.entries(query.params)) {
        if (value === undefined || value === null || value === '') {
          continue;
        }
        const v = templateSrv.replace(String(value), scopedVars, CSV_PARAMS.has(name) ? 'csv' : undefined).trim();
        if (v !== '') {
          params[name] = v;
        }
      }
      out.params = params;
    }
    if (query.rawSql !== undefined) {
      out.rawSql = templateSrv.replace(query.rawSql, scopedVars, sqlValue);
    }
    return out;
  }

  /** A query without a report, or a sql query without a statement, is not sent. */
  filterQuery(query: StatepipeQuery): boolean {
    if (!query.queryType) {
      return false;
    }
    if (query.queryType === 'sql') {
      return !!query.rawSql?.trim();
    }
    return true;
  }

  /**
   * The entries of one of the backend's resources: sites, lists, collections, deployments; at
   * `site` of the hierarchy when given (default: the datasource's site).
   */
  async listResource(name: ResourceName, site?: string): Promise<ResourceItem[]> {
    const items = await this.getResource<ResourceItem[] | null>(name, site ? { site } : undefined);
    return Array.isArray(items) ? items : [];
  }
}
