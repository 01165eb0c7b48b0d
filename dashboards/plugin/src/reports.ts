import { QueryType, ReportParams, ResourceName } from './types';

/**
 * What the query editor knows of each query type: one table, from which the report picker, the
 * parameter fields and the checks derive (adding a report is one entry). It follows
 * report.Reports() in the Go tree and schema/README.md ("Reports: GET /v1/reports/NAME"); the
 * API stays the judge of values (it answers 400 naming a bad parameter).
 */
export interface ParamDef {
  /** the query parameter, exactly as the API names it */
  name: string;
  label: string;
  help: string;
  placeholder?: string;
  required?: boolean;
  /** a backend resource whose entries the field offers (any value or $variable may be typed) */
  resource?: ResourceName;
  /** fixed choices the field offers (any value or $variable may be typed) */
  choices?: Array<{ value: string; label: string }>;
}

export interface ReportDef {
  name: QueryType;
  /** one line for the picker */
  description: string;
  params: ParamDef[];
  /** groups of parameters of which at least one must be given */
  oneOf?: string[][];
  /** groups of parameters of which at most one may be given */
  notBoth?: string[][];
  /** parameters the report takes without a field here (the API's `wait`; trend's from and to,
   * which the backend fills from the dashboard's time range unless given) */
  alsoAccepts?: string[];
  /** a note shown under the fields */
  note?: string;
}

const site: ParamDef = {
  name: 'site',
  label: 'Site',
  resource: 'sites',
  help: "site code: in a site hierarchy, narrow to this site and the sites below it (default: the datasource's site)",
  placeholder: "datasource's site",
};
const collection: ParamDef = {
  name: 'collection',
  label: 'Collection',
  resource: 'collections',
  help: 'collection id: count its members (default: every client of the site)',
  placeholder: 'every client',
};
const list: ParamDef = {
  name: 'list',
  label: 'Update list',
  resource: 'lists',
  help: 'update list id',
};
const updates: ParamDef = {
  name: 'updates',
  label: 'Updates',
  help: 'comma-separated update ids, instead of an update list (at most 1,000)',
  placeholder: 'KB5044284,KB5044285',
};

const enforcementStates = Array.from({ length: 11 }, (_, i) => ({ value: String(i), label: String(i) }));

export const REPORTS: ReportDef[] = [
  {
    name: 'compliance',
    description:
      'Per update of a list (or ids, or the catalog): installed, required, not required, unknown; per computer: compliant or not',
    params: [
      { ...list, help: 'update list id (default: every catalog update)', placeholder: 'every catalog update' },
      updates,
      collection,
      {
        name: 'source',
        label: 'Source',
        help: "aggregates (default: the projector's counts) or scan (recount the live states; slower)",
        placeholder: 'aggregates',
        choices: [
          { value: 'aggregates', label: 'aggregates' },
          { value: 'scan', label: 'scan' },
        ],
      },
      {
        name: 'not_deployed',
        label: 'Not deployed',
        help: "true: only the updates no deployment holds and some client in scope requires (ConfigMgr's Management 2)",
        placeholder: 'false',
        choices: [
          { value: 'false', label: 'false' },
          { value: 'true', label: 'true' },
        ],
      },
      {
        name: 'vendor',
        label: 'Vendor',
        help: "only the updates of this vendor, exactly as the catalog names it (ConfigMgr's Compliance 4)",
        placeholder: 'Microsoft',
      },
      {
        name: 'released',
        label: 'Released',
        help: 'only the updates released in this month (2026-11) or year (2026), UTC, by the catalog',
        placeholder: '2026-11',
      },
      {
        name: 'by',
        label: 'Group by',
        help: 'vendor, month or year: also a row per group (frame compliance_groups)',
        choices: ['vendor', 'month', 'year'].map((s) => ({ value: s, label: s })),
      },
      site,
    ],
    notBoth: [['list', 'updates']],
  },
  {
    name: 'machines',
    description:
      'Drill-down: the machines of one cell of compliance, update, deployment, errors or scan (a page at a time)',
    params: [
      {
        name: 'state',
        label: 'State',
        help: 'the cell: installed, required, not_required or unknown (with update); compliant, non_compliant or unknown (with list or updates); an enforcement state 0–10 (with deployment); a scan state 0–6 (with topic scan); none with error',
        choices: [
          ...['installed', 'required', 'not_required', 'unknown', 'compliant', 'non_compliant'].map((s) => ({
            value: s,
            label: s,
          })),
          ...enforcementStates,
        ],
      },
      {
        name: 'update',
        label: 'Update',
        help: "update id: its machines in state; with deployment, the deployment's targeted machines in this update's enforcement (402) state",
        placeholder: 'KB5044284',
      },
      list,
      updates,
      {
        name: 'deployment',
        label: 'Deployment',
        resource: 'deployments',
        help: 'deployment id: its targeted machines in an enforcement state (a number)',
      },
      {
        name: 'topic',
        label: 'Topic',
        help: 'with deployment: enforcement (301, the default), evaluation (302) or compliance (300); scan: the machines by latest scan state (with state), or of a scan error (with error)',
        choices: ['enforcement', 'evaluation', 'compliance', 'scan'].map((s) => ({ value: s, label: s })),
      },
      {
        name: 'error',
        label: 'Error',
        help: 'an HRESULT (0x80070643, or its decimal): the machines whose live update or deployment enforcement state carries it (with deployment: over its updates and itself; with topic scan: whose scan carries it)',
        placeholder: '0x80070643',
      },
      collection,
      { name: 'after', label: 'After', help: "the page after this client id (the previous answer's next)" },
      { name: 'limit', label: 'Limit', help: 'machines per page, 1–1000 (default 100)', placeholder: '100' },
      site,
    ],
    oneOf: [['update', 'list', 'updates', 'deployment', 'error', 'topic']],
    notBoth: [
      ['update', 'list', 'updates', 'error'],
      ['list', 'updates', 'deployment'],
    ],
  },
  {
    name: 'deployment',
    description:
      'ConfigMgr "States 1, 2 and 5": the clients a deployment targets, by enforcement, evaluation and compliance state, and per update by enforcement state',
    params: [
      { name: 'deployment', label: 'Deployment', resource: 'deployments', required: true, help: 'deployment id' },
      {
        name: 'state',
        label: 'State',
        help: 'also list the machines in this enforcement state, 0–10 (for pages, and over sites below, use machines)',
        choices: enforcementStates,
      },
      site,
    ],
  },
  {
    name: 'deployments',
    description:
      'ConfigMgr "Management 1, 3–6": the deployments of an update list, an update, a collection or a machine (or all)',
    params: [
      {
        name: 'deployment',
        label: 'Deployment',
        resource: 'deployments',
        help: 'this deployment only, its updates listed with their titles',
      },
      { ...list, help: 'update list id: the deployments holding any of its updates' },
      { name: 'update', label: 'Update', help: 'update id: the deployments holding it', placeholder: 'KB5044284' },
      { ...collection, help: 'collection id: the deployments targeting it', placeholder: 'any' },
      { name: 'client', label: 'Client', help: 'client id: the deployments whose target collection holds it' },
      site,
    ],
  },
  {
    name: 'errors',
    description:
      'HRESULTs of live enforcement (or scan) states, stack-ranked by machines, with their updates and deployments (or update sources)',
    params: [
      {
        name: 'topic',
        label: 'Topic',
        help: "enforcement (default: update 402 and deployment 301) or scan (501, per update source: ConfigMgr's Troubleshooting 1)",
        placeholder: 'enforcement',
        choices: ['enforcement', 'scan'].map((s) => ({ value: s, label: s })),
      },
      {
        name: 'deployment',
        label: 'Deployment',
        resource: 'deployments',
        help: "optional: only that deployment's target collection, its updates and itself",
        placeholder: 'every deployment',
      },
      collection,
      site,
    ],
    notBoth: [['deployment', 'collection']],
  },
  {
    name: 'scan',
    description: 'Clients by the state of their latest scan, and those without a recent successful one',
    params: [
      collection,
      {
        name: 'days',
        label: 'Stale after (days)',
        help: 'stale: no successful scan in this many days, 1–36500 (default 7)',
        placeholder: '7',
      },
      site,
    ],
  },
  {
    name: 'computer',
    description:
      'One machine against an update list, ids or a deployment: each update’s state and enforcement; with a deployment, its 301/302/300 states for it (ConfigMgr "States 3")',
    params: [
      { name: 'client', label: 'Client', required: true, help: 'client id', placeholder: 'pc-0001' },
      list,
      updates,
      {
        name: 'deployment',
        label: 'Deployment',
        resource: 'deployments',
        help: "deployment id, instead of list or updates: its updates, and the machine's enforcement, evaluation and compliance states for it",
      },
      site,
    ],
    oneOf: [['list', 'updates', 'deployment']],
    notBoth: [['list', 'updates', 'deployment']],
  },
  {
    name: 'update',
    description: 'One update across the site or a collection: compliance counts and enforcement states',
    params: [
      { name: 'update', label: 'Update', required: true, help: 'update id', placeholder: 'KB5044284' },
      collection,
      site,
    ],
  },
  {
    name: 'trend',
    description: "Compliance with an update list (or ids) over the dashboard's time range, from the message history",
    params: [
      list,
      updates,
      collection,
      {
        name: 'step',
        label: 'Step',
        help: 'Go duration between points, e.g. 1h or 24h (default: by the range, at most 32 points)',
        placeholder: 'by the range',
      },
      site,
    ],
    oneOf: [['list', 'updates']],
    notBoth: [['list', 'updates']],
    alsoAccepts: ['wait', 'from', 'to'],
    note: "From and to are the dashboard's time range (the backend adds them).",
  },
  {
    name: 'backlog',
    description: 'Per site: reports accepted and not folded; per link: freshness, backlog and state; pacing',
    params: [site],
  },
  {
    name: 'sql',
    description: "Read-only SQL over the site's views (POST /v1/sql), with time macros",
    params: [{ ...site, help: "the site whose database the statement reads (default: the datasource's site)" }],
  },
];

function accepts(def: ReportDef, name: string): boolean {
  return (def.alsoAccepts ?? (def.name === 'sql' ? [] : ['wait'])).includes(name);
}

const byName = new Map<string, ReportDef>(REPORTS.map((r) => [r.name, r]));

/** The report (or sql) of a query type; undefined for an unknown one. */
export function reportDef(name: string | undefined): ReportDef | undefined {
  return name === undefined ? undefined : byName.get(name);
}

/**
 * The parameters to keep when a query changes to the report `to`: those it takes, with a value.
 * (The API refuses a parameter a report does not take, e.g. scan?deployment=D.)
 */
export function paramsFor(to: string, params: ReportParams | undefined): ReportParams {
  const def = reportDef(to);
  const kept: ReportParams = {};
  if (!def || !params) {
    return kept;
  }
  for (const [name, v] of Object.entries(params)) {
    if (v !== '' && (def.params.some((p) => p.name === name) || accepts(def, name))) {
      kept[name] = v;
    }
  }
  return kept;
}

/**
 * What is wrong with a query's parameters as the editor sees them, in words; empty when
 * nothing is. Values are not judged here: the API answers 400 naming a bad one.
 */
export function paramProblems(queryType: string | undefined, params: ReportParams | undefined): string[] {
  const def = reportDef(queryType);
  if (!def) {
    return queryType ? [`unknown query type ${queryType}`] : ['pick a report'];
  }
  const given = (name: string) => !!params?.[name];
  const problems: string[] = [];
  for (const p of def.params) {
    if (p.required && !given(p.name)) {
      problems.push(`${p.name} is required`);
    }
  }
  for (const group of def.oneOf ?? []) {
    if (!group.some(given)) {
      problems.push(`give one of ${group.join(', ')}`);
    }
  }
  for (const group of def.notBoth ?? []) {
    const set = group.filter(given);
    if (set.length > 1) {
      problems.push(`give only one of ${set.join(', ')}`);
    }
  }
  for (const name of Object.keys(params ?? {})) {
    if (!def.params.some((p) => p.name === name) && !accepts(def, name)) {
      problems.push(`report ${def.name} takes no parameter ${name}`);
    }
  }
  return problems;
}
