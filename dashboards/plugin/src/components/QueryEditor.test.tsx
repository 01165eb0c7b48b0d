import React from 'react';
import { act, fireEvent, render, screen, waitFor, within } from '@testing-library/react';

import { QueryEditor, SQL_HINT, errorText } from './QueryEditor';
import { DataSource } from '../datasource';
import { REPORTS } from '../reports';
import { QUERY_TYPES, ResourceItem, ResourceName, StatepipeQuery } from '../types';
import { byId, fakeTemplateSrv, instanceSettings, openCombobox, pickOption } from '../testutil/grafana';

const templateSrv = fakeTemplateSrv({ list: 'L-2026-11' });
jest.mock('@grafana/runtime', () => ({
  ...jest.requireActual('@grafana/runtime'),
  getTemplateSrv: () => templateSrv,
}));

const RESOURCES: Record<ResourceName, ResourceItem[]> = {
  sites: [
    { value: 'CEN', text: 'CEN' },
    { value: 'P01', text: 'P01' },
  ],
  lists: [{ value: 'L-2026-11', text: 'Patch Tuesday November 2026' }],
  collections: [{ value: 'C-ALL', text: 'All workstations' }],
  deployments: [{ value: 'D-2026-11', text: 'November pilot' }],
};

async function setup(query: Partial<StatepipeQuery>) {
  const datasource = new DataSource(instanceSettings());
  const listResource = jest
    .spyOn(datasource, 'listResource')
    .mockImplementation(async (name: ResourceName) => RESOURCES[name]);
  const onChange = jest.fn();
  const onRunQuery = jest.fn();
  const props = { datasource, onChange, onRunQuery };
  const full = { refId: 'A', ...query } as StatepipeQuery;
  const view = render(<QueryEditor {...props} query={full} />);
  // let the resources the fields offer arrive
  const settle = () => act(() => Promise.resolve());
  const rerender = async (q: StatepipeQuery) => {
    view.rerender(<QueryEditor {...props} query={q} />);
    await settle();
  };
  await settle();
  return { datasource, listResource, onChange, onRunQuery, rerender };
}

const field = (name: string) => byId(`statepipe-param-${name}`);
const fieldIds = () =>
  Array.from(document.querySelectorAll('[id^="statepipe-param-"]')).map((e) => e.id.replace('statepipe-param-', ''));

describe('QueryEditor', () => {
  it('offers the ten query types, each with a description', async () => {
    expect(REPORTS.map((r) => r.name)).toEqual([...QUERY_TYPES]);
    await setup({ queryType: 'backlog', params: {} });
    const menu = await openCombobox('statepipe-report');
    for (const r of REPORTS) {
      expect(menu).toHaveTextContent(r.name);
      expect(menu).toHaveTextContent(r.description);
      expect(r.description.length).toBeGreaterThan(20);
    }
  });

  it('picking a report keeps the parameters it takes and drops the others, then runs', async () => {
    const { onChange, onRunQuery } = await setup({
      queryType: 'compliance',
      params: { list: 'L-2026-11', collection: 'C-ALL', site: 'P01' },
    });
    await pickOption('statepipe-report', 'deployment');
    expect(onChange).toHaveBeenCalledTimes(1);
    expect(onChange.mock.lastCall[0]).toEqual({ refId: 'A', queryType: 'deployment', params: { site: 'P01' } });
    expect(onRunQuery).toHaveBeenCalled();
  });

  it("shows the picked report's fields and only those", async () => {
    const { rerender } = await setup({ queryType: 'compliance', params: {} });
    expect(fieldIds()).toEqual([
      'list',
      'updates',
      'collection',
      'source',
      'not_deployed',
      'vendor',
      'released',
      'by',
      'site',
    ]);
    expect(screen.getByText(REPORTS[0].description)).toBeInTheDocument();
    expect(screen.queryByText('This query is not complete')).not.toBeInTheDocument();

    await rerender({ refId: 'A', queryType: 'deployment', params: {} });
    expect(fieldIds()).toEqual(['deployment', 'state', 'site']);
    expect(screen.getByLabelText(/^Deployment/)).toBe(field('deployment'));
    // a required parameter left out is named
    expect(screen.getByText('This query is not complete')).toBeInTheDocument();
    expect(screen.getByText('deployment is required')).toBeInTheDocument();

    await rerender({ refId: 'A', queryType: 'machines', params: { state: 'required' } });
    expect(fieldIds()).toEqual([
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
    ]);
    expect(screen.getByText('give one of update, list, updates, deployment, error, topic')).toBeInTheDocument();
  });

  it('writes a typed parameter into params under its API name, and drops it when emptied', async () => {
    const { onChange, onRunQuery } = await setup({
      queryType: 'computer',
      params: { list: 'L-2026-11', updates: 'U1' },
    });
    expect(field('updates')).toHaveValue('U1');
    fireEvent.change(field('client'), { target: { value: 'pc-0001' } });
    expect(onChange.mock.lastCall[0].params).toEqual({ list: 'L-2026-11', updates: 'U1', client: 'pc-0001' });
    expect(onRunQuery).not.toHaveBeenCalled();
    fireEvent.blur(field('client'));
    expect(onRunQuery).toHaveBeenCalled();

    fireEvent.change(field('updates'), { target: { value: '' } });
    expect(onChange.mock.lastCall[0].params).toEqual({ list: 'L-2026-11' });
  });

  it('offers the backend resources where a parameter takes one, and writes the id', async () => {
    const { onChange, onRunQuery, listResource } = await setup({ queryType: 'deployment', params: {} });
    expect(listResource).toHaveBeenCalledWith('deployments');
    expect(listResource).toHaveBeenCalledWith('sites');
    expect(listResource).not.toHaveBeenCalledWith('lists');
    await pickOption('statepipe-param-deployment', 'November pilot');
    expect(onChange.mock.lastCall[0]).toEqual({
      refId: 'A',
      queryType: 'deployment',
      params: { deployment: 'D-2026-11' },
    });
    expect(onRunQuery).toHaveBeenCalled();
  });

  it("shows a parameter's value by the resource's name for it", async () => {
    await setup({ queryType: 'errors', params: { deployment: 'D-2026-11', site: 'S09' } });
    await waitFor(() => expect(field('deployment')).toHaveValue('November pilot'));
    // a value the resource does not list is shown as it is
    expect(field('site')).toHaveValue('S09');
  });

  it('takes a value typed into a picker', async () => {
    const { onChange } = await setup({ queryType: 'update', params: {} });
    fireEvent.change(field('collection'), { target: { value: 'C-NEW' } });
    const listbox = await openCombobox('statepipe-param-collection');
    fireEvent.click(within(listbox).getAllByText('C-NEW', { exact: true })[0]);
    expect(onChange.mock.lastCall[0].params).toEqual({ collection: 'C-NEW' });
  });

  it('offers template variables in the pickers', async () => {
    const { onChange } = await setup({ queryType: 'trend', params: {} });
    await pickOption('statepipe-param-list', '$list');
    expect(onChange.mock.lastCall[0].params).toEqual({ list: '$list' });
    expect(screen.getByText("From and to are the dashboard's time range (the backend adds them).")).toBeInTheDocument();
  });

  it('names a resource it cannot list', async () => {
    const datasource = new DataSource(instanceSettings());
    jest.spyOn(datasource, 'listResource').mockRejectedValue({ data: { message: 'statepipe answered 401' } });
    render(
      <QueryEditor
        datasource={datasource}
        query={{ refId: 'A', queryType: 'scan' }}
        onChange={jest.fn()}
        onRunQuery={jest.fn()}
      />
    );
    expect(await screen.findByText('cannot list collections: statepipe answered 401')).toBeInTheDocument();
  });

  it('edits the statement of a sql query, with a hint of the macros', async () => {
    const { onChange } = await setup({ queryType: 'sql', rawSql: '' });
    for (const macro of ['$__timeFilter(', '$__timeFrom()', '$__timeTo()', '$__timeGroup(']) {
      expect(SQL_HINT).toContain(macro);
    }
    expect(screen.getByText(SQL_HINT)).toBeInTheDocument();
    fireEvent.change(byId('statepipe-sql'), { target: { value: 'SELECT count() FROM v_live_state' } });
    expect(onChange.mock.lastCall[0]).toEqual({
      refId: 'A',
      queryType: 'sql',
      rawSql: 'SELECT count() FROM v_live_state',
    });
    expect(fieldIds()).toEqual(['site']);
  });

  it('switching to sql keeps only site, and back drops rawSql', async () => {
    const { onChange, rerender } = await setup({ queryType: 'scan', params: { days: '14', site: 'P01' } });
    await pickOption('statepipe-report', 'sql');
    expect(onChange.mock.lastCall[0]).toEqual({ refId: 'A', queryType: 'sql', params: { site: 'P01' }, rawSql: '' });
    await rerender({ refId: 'A', queryType: 'sql', rawSql: 'SELECT 1' });
    await pickOption('statepipe-report', 'scan');
    expect(onChange.mock.lastCall[0]).toEqual({ refId: 'A', queryType: 'scan', params: {} });
  });
});

describe('errorText', () => {
  it("reads the backend resource's error body", () => {
    expect(
      errorText({
        status: 502,
        statusText: 'Bad Gateway',
        data: { error: { field: 'lists', message: 'cannot reach statepipe (POST /v1/sql): connection refused' } },
      })
    ).toBe('cannot reach statepipe (POST /v1/sql): connection refused');
  });
});
