import React from 'react';
import { DataSourceSettings } from '@grafana/data';
import { fireEvent, render, screen } from '@testing-library/react';

import { ConfigEditor } from './ConfigEditor';
import { StatepipeOptions, StatepipeSecureJsonData } from '../types';

function settings(
  over: Partial<DataSourceSettings<StatepipeOptions, StatepipeSecureJsonData>> = {}
): DataSourceSettings<StatepipeOptions, StatepipeSecureJsonData> {
  return {
    id: 1,
    uid: 'statepipe',
    orgId: 1,
    name: 'statepipe',
    type: 'statepipe-reports-datasource',
    typeName: 'statepipe',
    typeLogoUrl: '',
    access: 'proxy',
    url: '',
    user: '',
    database: '',
    basicAuth: false,
    basicAuthUser: '',
    isDefault: false,
    readOnly: false,
    withCredentials: false,
    jsonData: { url: 'http://statepipe:8081', site: 'CEN' },
    secureJsonFields: {},
    ...over,
  };
}

describe('ConfigEditor', () => {
  it('shows the URL and the site from jsonData', () => {
    render(<ConfigEditor options={settings()} onOptionsChange={jest.fn()} />);
    expect(screen.getByDisplayValue('http://statepipe:8081')).toHaveAttribute('id', 'config-editor-url');
    expect(screen.getByDisplayValue('CEN')).toHaveAttribute('id', 'config-editor-site');
  });

  it('writes the URL and the site into jsonData, keeping the rest', () => {
    const onOptionsChange = jest.fn();
    const { container } = render(<ConfigEditor options={settings()} onOptionsChange={onOptionsChange} />);
    fireEvent.change(container.querySelector('#config-editor-url')!, { target: { value: ' http://10.0.0.5:8080 ' } });
    expect(onOptionsChange).toHaveBeenLastCalledWith(
      expect.objectContaining({ jsonData: { url: 'http://10.0.0.5:8080', site: 'CEN' } })
    );
    fireEvent.change(container.querySelector('#config-editor-site')!, { target: { value: 'P01' } });
    expect(onOptionsChange).toHaveBeenLastCalledWith(
      expect.objectContaining({ jsonData: { url: 'http://statepipe:8081', site: 'P01' } })
    );
  });

  it('writes the token into secureJsonData.token, never into jsonData', () => {
    const onOptionsChange = jest.fn();
    const { container } = render(<ConfigEditor options={settings()} onOptionsChange={onOptionsChange} />);
    const token = container.querySelector('#config-editor-token')!;
    expect(token).toHaveAttribute('type', 'password');
    fireEvent.change(token, { target: { value: 's3cret' } });
    const next = onOptionsChange.mock.lastCall[0];
    expect(next.secureJsonData).toEqual({ token: 's3cret' });
    expect(JSON.stringify(next.jsonData)).not.toContain('s3cret');
  });

  it('shows a stored token as configured and resets it', () => {
    const onOptionsChange = jest.fn();
    render(
      <ConfigEditor options={settings({ secureJsonFields: { token: true } })} onOptionsChange={onOptionsChange} />
    );
    expect(screen.getByDisplayValue('configured')).toBeDisabled();
    fireEvent.click(screen.getByRole('button', { name: 'Reset' }));
    expect(onOptionsChange).toHaveBeenLastCalledWith(
      expect.objectContaining({ secureJsonFields: { token: false }, secureJsonData: { token: '' } })
    );
  });
});
