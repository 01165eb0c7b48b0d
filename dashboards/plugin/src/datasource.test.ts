import { DataSource, sqlValue } from './datasource';
import { StatepipeQuery } from './types';
import { fakeTemplateSrv, instanceSettings } from './testutil/grafana';

const templateSrv = fakeTemplateSrv({
  list: 'L-2026-11',
  collection: 'C-ALL',
  site: 'P01',
  nothing: '',
  kbs: ['KB1', 'KB2'],
  sites: ['P01', "O'Brien"],
});
jest.mock('@grafana/runtime', () => ({
  ...jest.requireActual('@grafana/runtime'),
  getTemplateSrv: () => templateSrv,
}));

describe('DataSource.applyTemplateVariables', () => {
  const ds = new DataSource(instanceSettings());

  it('interpolates every params value and drops the empty ones', () => {
    const query: StatepipeQuery = {
      refId: 'A',
      queryType: 'compliance',
      params: { list: '$list', collection: '${collection}', site: '$nothing', source: '', updates: '' },
    };
    const out = ds.applyTemplateVariables(query, {});
    expect(out).toEqual({ refId: 'A', queryType: 'compliance', params: { list: 'L-2026-11', collection: 'C-ALL' } });
    // the query the editor holds is not changed
    expect(query.params).toEqual({
      list: '$list',
      collection: '${collection}',
      site: '$nothing',
      source: '',
      updates: '',
    });
  });

  it('prefers scoped variables (repeated panels) and joins a multi-value updates with commas', () => {
    const out = ds.applyTemplateVariables(
      { refId: 'A', queryType: 'trend', params: { updates: '$kbs', site: '$site' } },
      { site: { text: 'S01', value: 'S01' } }
    );
    expect(out.params).toEqual({ updates: 'KB1,KB2', site: 'S01' });
  });

  it('interpolates rawSql, leaving the time macros to the backend', () => {
    const out = ds.applyTemplateVariables(
      {
        refId: 'A',
        queryType: 'sql',
        rawSql:
          "SELECT count() FROM v_collection_members WHERE collection = '$collection' AND $__timeFilter(time) AND site IN ($sites)",
      },
      {}
    );
    expect(out.rawSql).toBe(
      "SELECT count() FROM v_collection_members WHERE collection = 'C-ALL' AND $__timeFilter(time) AND site IN ('P01','O''Brien')"
    );
    expect(out.params).toBeUndefined();
  });

  it('formats SQL values: one escaped, several quoted', () => {
    expect(sqlValue('P01')).toBe('P01');
    expect(sqlValue(['a', "b'c"])).toBe("'a','b''c'");
    expect(sqlValue(undefined)).toBe('');
  });

  it('escapes backslashes and quotes as ClickHouse string literals need', () => {
    // ClickHouse reads \' inside '…' as a quote: a value ending in a backslash must not end the
    // literal early and let the next value be read as SQL
    expect(sqlValue(['x\\', ') OR 1=1 --'])).toBe("'x\\\\',') OR 1=1 --'");
    // one value, written inside '$var' by the statement
    expect(sqlValue("O'Brien")).toBe("O''Brien");
    expect(sqlValue('a\\')).toBe('a\\\\');
    // one value of a multi-value variable is quoted like several, for IN ($var)
    expect(sqlValue('P01', { multi: true })).toBe("'P01'");
    expect(sqlValue('P01', { includeAll: true })).toBe("'P01'");
  });
});

describe('DataSource', () => {
  const ds = new DataSource(instanceSettings());

  it('sends only queries with a report, and sql only with a statement', () => {
    expect(ds.filterQuery({ refId: 'A', queryType: 'backlog' })).toBe(true);
    expect(ds.filterQuery({ refId: 'A' })).toBe(false);
    expect(ds.filterQuery({ refId: 'A', queryType: 'sql', rawSql: '  ' })).toBe(false);
    expect(ds.filterQuery({ refId: 'A', queryType: 'sql', rawSql: 'SELECT 1' })).toBe(true);
  });

  it('starts a new query as the compliance report', () => {
    expect(ds.getDefaultQuery({} as never)).toEqual({ queryType: 'compliance', params: {} });
  });

  it('reads a resource from the backend', async () => {
    const get = jest
      .spyOn(ds, 'getResource')
      .mockResolvedValueOnce([{ value: 'L1', text: 'List one' }])
      .mockResolvedValueOnce(null);
    await expect(ds.listResource('lists')).resolves.toEqual([{ value: 'L1', text: 'List one' }]);
    expect(get).toHaveBeenCalledWith('lists', undefined);
    await expect(ds.listResource('sites', 'S01')).resolves.toEqual([]);
    expect(get).toHaveBeenLastCalledWith('sites', { site: 'S01' });
  });
});
