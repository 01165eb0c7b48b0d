import { DataSourceInstanceSettings, PluginType, ScopedVars } from '@grafana/data';
import { fireEvent, screen, within } from '@testing-library/react';

import { StatepipeOptions } from '../types';

/** Settings of a statepipe datasource as Grafana hands them to the frontend. */
export function instanceSettings(jsonData: StatepipeOptions = { url: 'http://statepipe:8081', site: 'CEN' }) {
  return {
    id: 1,
    uid: 'statepipe',
    type: 'statepipe-reports-datasource',
    name: 'statepipe',
    access: 'proxy',
    readOnly: false,
    jsonData,
    meta: {
      id: 'statepipe-reports-datasource',
      name: 'statepipe',
      type: PluginType.datasource,
      backend: true,
      alerting: true,
      module: '',
      baseUrl: '',
      info: {
        author: { name: 'statepipe' },
        description: '',
        links: [],
        logos: { small: '', large: '' },
        screenshots: [],
        updated: '',
        version: '',
      },
    },
  } as DataSourceInstanceSettings<StatepipeOptions>;
}

/**
 * A stand-in for Grafana's template service: $name and ${name} from `vars` (scopedVars first),
 * formats 'csv', a formatter function, or Grafana's default (a multi-value as {a,b}); an
 * unknown $name (like the SQL macros) is left as it is, as Grafana leaves it.
 */
export function fakeTemplateSrv(vars: Record<string, string | string[]>) {
  const replace = jest.fn((target?: string, scoped?: ScopedVars, format?: string | Function) =>
    (target ?? '').replace(/\$\{(\w+)\}|\$(\w+)/g, (match, braced: string, bare: string) => {
      const name = braced ?? bare;
      const value = scoped?.[name]?.value ?? vars[name];
      if (value === undefined) {
        return match;
      }
      if (typeof format === 'function') {
        return format(value, {}, (v: unknown) => v);
      }
      if (Array.isArray(value)) {
        return format === 'csv' ? value.join(',') : `{${value.join(',')}}`;
      }
      return String(value);
    })
  );
  return {
    replace,
    getVariables: () => Object.keys(vars).map((name) => ({ name })),
    containsTemplate: (t?: string) => /\$/.test(t ?? ''),
    updateTimeRange: jest.fn(),
  };
}

/** The input of an editor's field, by its id (a parameter's is statepipe-param-NAME). */
export function byId(id: string): HTMLElement {
  const el = document.getElementById(id);
  if (!el) {
    throw new Error(`no element #${id} in ${document.body.innerHTML.length} bytes of document`);
  }
  return el;
}

/** Opens a Grafana Combobox (by its input's id) and returns its list of options. */
export async function openCombobox(id: string): Promise<HTMLElement> {
  fireEvent.keyDown(byId(id), { key: 'ArrowDown' });
  const boxes = await screen.findAllByRole('listbox');
  return boxes[boxes.length - 1];
}

/** Opens a Grafana Combobox (by its input's id) and clicks the option labelled `text`. */
export async function pickOption(id: string, text: string) {
  const listbox = await openCombobox(id);
  // the first match: an option's label comes before its description
  fireEvent.click(within(listbox).getAllByText(text, { exact: true })[0]);
}
