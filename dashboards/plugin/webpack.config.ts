// The plugin's webpack configuration: the scaffold's (.config/webpack, not to be edited, so that
// `npx @grafana/create-plugin update` can replace it) with one change. The scaffold copies
// ../LICENSE into dist/ and fails the build without one; statepipe has no LICENSE file yet, so
// here a missing LICENSE is skipped (it is copied once there is one).
import CopyWebpackPlugin from 'copy-webpack-plugin';
import type { Configuration } from 'webpack';

import grafanaConfig, { type Env } from './.config/webpack/webpack.config';
import { copyFilePatterns } from './.config/bundler/copyFiles';

const config = async (env: Env): Promise<Configuration> => {
  const base = await grafanaConfig(env);
  const patterns = copyFilePatterns.map((p) => (p.from === '../LICENSE' ? { ...p, noErrorOnMissing: true } : p));
  let replaced = 0;
  const plugins = (base.plugins ?? []).map((p) => {
    if (p instanceof CopyWebpackPlugin) {
      replaced++;
      return new CopyWebpackPlugin({ patterns });
    }
    return p;
  });
  if (replaced !== 1) {
    throw new Error(`webpack.config.ts: found ${replaced} CopyWebpackPlugin in the scaffold's config, want 1`);
  }
  return { ...base, plugins };
};

export default config;
