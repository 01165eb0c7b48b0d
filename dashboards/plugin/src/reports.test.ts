import { paramProblems, paramsFor, reportDef, REPORTS } from './reports';

describe('reports', () => {
  it('names every parameter as the API does', () => {
    const names = Object.fromEntries(REPORTS.map((r) => [r.name, r.params.map((p) => p.name)]));
    expect(names).toEqual({
      compliance: ['list', 'updates', 'collection', 'source', 'not_deployed', 'vendor', 'released', 'by', 'site'],
      machines: [
        'state',
        'update',
        'list',
        'updates',
        'deployment',
        'topic',
        'error',
        'collection',
        'after',
        'limit',
        'site',
      ],
      deployment: ['deployment', 'state', 'site'],
      deployments: ['deployment', 'list', 'update', 'collection', 'client', 'site'],
      errors: ['topic', 'deployment', 'collection', 'site'],
      scan: ['collection', 'days', 'site'],
      computer: ['client', 'list', 'updates', 'deployment', 'site'],
      update: ['update', 'collection', 'site'],
      trend: ['list', 'updates', 'collection', 'step', 'site'],
      backlog: ['site'],
      sql: ['site'],
    });
  });

  it('judges required, one-of and not-both parameters', () => {
    expect(paramProblems('compliance', {})).toEqual([]);
    expect(paramProblems('compliance', { list: 'L', updates: 'U1' })).toEqual(['give only one of list, updates']);
    expect(paramProblems('computer', {})).toEqual(['client is required', 'give one of list, updates, deployment']);
    expect(paramProblems('computer', { client: 'pc', deployment: 'D', list: 'L' })).toEqual([
      'give only one of list, deployment',
    ]);
    expect(paramProblems('machines', { topic: 'scan', state: '5' })).toEqual([]);
    expect(paramProblems('machines', { error: '0x80070643', deployment: 'D' })).toEqual([]);
    expect(paramProblems('machines', { update: 'U1', deployment: 'D', state: '10' })).toEqual([]);
    expect(paramProblems('machines', { list: 'L', deployment: 'D', state: '1' })).toEqual([
      'give only one of list, deployment',
    ]);
    expect(paramProblems('errors', { topic: 'scan', collection: 'C' })).toEqual([]);
    expect(paramProblems('errors', { deployment: 'D', collection: 'C' })).toEqual([
      'give only one of deployment, collection',
    ]);
    expect(paramProblems('scan', { deployment: 'D' })).toEqual(['report scan takes no parameter deployment']);
    expect(paramProblems('trend', { list: 'L', from: '2026-11-01T00:00:00Z', wait: 'true' })).toEqual([]);
    expect(paramProblems('nope', {})).toEqual(['unknown query type nope']);
  });

  it('keeps, across a change of report, what the new one takes', () => {
    expect(paramsFor('update', { list: 'L', collection: 'C', site: 'P01', days: '7' })).toEqual({
      collection: 'C',
      site: 'P01',
    });
    expect(paramsFor('sql', { site: 'P01', list: 'L' })).toEqual({ site: 'P01' });
    expect(reportDef(undefined)).toBeUndefined();
  });
});
