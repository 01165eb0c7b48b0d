import { DataSourceJsonData } from '@grafana/data';
import { DataQuery } from '@grafana/schema';

/**
 * The query types: statepipe's reports (GET /v1/reports/NAME, schema/README.md)
 * and `sql` (POST /v1/sql, read-only). The backend (pkg/plugin) serves exactly these.
 */
export const QUERY_TYPES = [
  'compliance',
  'machines',
  'deployment',
  'deployments',
  'errors',
  'scan',
  'computer',
  'update',
  'trend',
  'backlog',
  'sql',
] as const;

export type QueryType = (typeof QUERY_TYPES)[number];

/** A report's query parameters as the API names them (e.g. {"list": "L-2026-11", "site": "P01"}). */
export type ReportParams = Record<string, string>;

/**
 * The JSON of one query, beside Grafana's refId, datasource and hide.
 *
 * - `queryType`: one of QUERY_TYPES.
 * - `params`: the report's query parameters exactly as GET /v1/reports/NAME names them; empty
 *   values are dropped. The backend adds the dashboard's time range where a report takes one
 *   (trend: from, to).
 * - `rawSql`: the statement of a `sql` query, with the macros $__timeFilter(col), $__timeFrom(),
 *   $__timeTo() and $__timeGroup(col, interval), which the backend expands in UTC to the second.
 *
 * Template variables are interpolated in the frontend (DataSource.applyTemplateVariables), so
 * what reaches the backend, and what an alert rule stores, is self-contained.
 */
export interface StatepipeQuery extends DataQuery {
  queryType?: QueryType;
  params?: ReportParams;
  rawSql?: string;
}

/** Settings of a datasource instance (jsonData). */
export interface StatepipeOptions extends DataSourceJsonData {
  /** statepipe's HTTP API, e.g. http://statepipe:8081 */
  url?: string;
  /** the site to ask (site=); empty: the site the URL serves */
  site?: string;
}

/** Secure settings: sent to the backend only, never back to the browser. */
export interface StatepipeSecureJsonData {
  /** the site's reader token (--reader-token), sent as Authorization: Bearer */
  token?: string;
}

/** The backend's resources for template variables and pickers: GET <resource URL>/NAME. */
export const RESOURCES = ['sites', 'lists', 'collections', 'deployments'] as const;

export type ResourceName = (typeof RESOURCES)[number];

/** One entry of a resource's answer: [{"value": "...", "text": "..."}]. */
export interface ResourceItem {
  value: string;
  text: string;
}

/**
 * The query of a template variable of this datasource (the variable's "query" in the dashboard
 * JSON), e.g.
 *
 *     {"resource": "lists"}
 *     {"resource": "collections", "site": "$site"}
 *
 * `resource` is one of "sites", "lists", "collections", "deployments": the variable's values are
 * the resource's `value`s (ids), shown as their `text`. `site` (optional; template variables
 * allowed) asks that site of the hierarchy instead of the datasource's. A bare string
 * ("lists"), as hand-written dashboards may carry, is read as {"resource": "lists"}.
 */
export interface StatepipeVariableQuery extends DataQuery {
  resource: ResourceName;
  site?: string;
}
