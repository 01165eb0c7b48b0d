import React from 'react';
import { DataQueryRequest, DataQueryResponse, DataFrame } from '@grafana/data';
import { fireEvent, render } from '@testing-library/react';
import { lastValueFrom } from 'rxjs';

import { DataSource } from './datasource';
import { StatepipeVariableSupport, resourceOf } from './variables';
import { VariableQueryEditor } from './components/VariableQueryEditor';
import { StatepipeVariableQuery } from './types';
import { byId, fakeTemplateSrv, instanceSettings, pickOption } from './testutil/grafana';

const templateSrv = fakeTemplateSrv({ site: 'P01' });
jest.mock('@grafana/runtime', () => ({
  ...jest.requireActual('@grafana/runtime'),
  getTemplateSrv: () => templateSrv,
}));

function request(target: unknown) {
  return { targets: [target] } as DataQueryRequest<StatepipeVariableQuery>;
}

function columns(res: DataQueryResponse) {
  const frame = res.data[0] as DataFrame;
  return Object.fromEntries(frame.fields.map((f) => [f.name, [...f.values]]));
}

describe('StatepipeVariableSupport', () => {
  const ds = new DataSource(instanceSettings());
  const list = jest.spyOn(ds, 'listResource');

  beforeEach(() => list.mockReset());

  it('is the datasource variable support, with its editor', () => {
    expect(ds.variables).toBeInstanceOf(StatepipeVariableSupport);
    expect((ds.variables as StatepipeVariableSupport).editor).toBe(VariableQueryEditor);
  });

  it('lists the resource the query names, as text and value fields', async () => {
    list.mockResolvedValue([
      { value: 'C-ALL', text: 'All workstations' },
      { value: 'C-SRV', text: '' },
    ]);
    const res = await lastValueFrom(
      (ds.variables as StatepipeVariableSupport).query(request({ refId: 'A', resource: 'collections' }))
    );
    expect(list).toHaveBeenCalledWith('collections', undefined);
    expect(columns(res)).toEqual({ text: ['All workstations', 'C-SRV'], value: ['C-ALL', 'C-SRV'] });
  });

  it('reads a bare resource name too', async () => {
    list.mockResolvedValue([{ value: 'P01', text: 'P01' }]);
    await lastValueFrom((ds.variables as StatepipeVariableSupport).query(request('sites')));
    expect(list).toHaveBeenCalledWith('sites', undefined);
  });

  it('asks the site the query names, with its variables interpolated', async () => {
    list.mockResolvedValue([]);
    await lastValueFrom(
      (ds.variables as StatepipeVariableSupport).query(request({ refId: 'A', resource: 'lists', site: '$site' }))
    );
    expect(list).toHaveBeenCalledWith('lists', 'P01');
  });

  it('refuses an unknown resource, naming it', async () => {
    await expect(
      lastValueFrom((ds.variables as StatepipeVariableSupport).query(request({ refId: 'A', resource: 'clients' })))
    ).rejects.toThrow('resource "clients": want one of sites, lists, collections, deployments');
    expect(() => resourceOf(undefined)).toThrow('resource null');
    expect(list).not.toHaveBeenCalled();
  });
});

describe('VariableQueryEditor', () => {
  const ds = new DataSource(instanceSettings());
  const renderEditor = (query: StatepipeVariableQuery | string, onChange = jest.fn()) => {
    render(
      <VariableQueryEditor
        datasource={ds}
        query={query as StatepipeVariableQuery}
        onChange={onChange}
        onRunQuery={jest.fn()}
      />
    );
    return onChange;
  };

  it('writes {"resource": NAME}', async () => {
    const onChange = renderEditor({ refId: 'A', resource: 'lists' });
    await pickOption('statepipe-variable-resource', 'deployments');
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', resource: 'deployments' });
  });

  it('writes the site when one is typed, and drops it when emptied', () => {
    const onChange = renderEditor({ refId: 'A', resource: 'collections', site: 'P01' });
    const site = byId('statepipe-variable-site');
    fireEvent.change(site, { target: { value: ' $site ' } });
    fireEvent.blur(site);
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', resource: 'collections', site: '$site' });
    fireEvent.change(site, { target: { value: '' } });
    fireEvent.blur(site);
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', resource: 'collections' });
  });

  it('shows a bare string query as the resource it names', () => {
    const onChange = renderEditor('sites');
    expect(byId('statepipe-variable-resource')).toHaveValue('sites');
    const site = byId('statepipe-variable-site');
    fireEvent.change(site, { target: { value: 'S01' } });
    fireEvent.blur(site);
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', resource: 'sites', site: 'S01' });
  });
});
