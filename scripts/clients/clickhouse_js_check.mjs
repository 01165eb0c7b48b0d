// Query a statepipe site's ClickHouse HTTP interface with @clickhouse/client, as an analyst
// would:
//
//	node clickhouse_js_check.mjs URL PASSWORD
//
// Prints one JSON object: the client's version, the compliance per update of the report view
// v_update_compliance_status read as JSONEachRow, how long that query took through the client,
// and the error a refused write surfaced as. The Go test (cmd/statepipe/chhttp_e2e_test.go)
// compares the numbers with the site's own compliance report.
import { createClient } from '@clickhouse/client'
import { createRequire } from 'node:module'

const [url, password] = process.argv.slice(2)
const version = createRequire(import.meta.url)('@clickhouse/client/package.json').version
const client = createClient({ url, username: 'default', password })

const query = `
SELECT update_id,
       countIf(state = 3) AS installed, countIf(state = 2) AS required,
       countIf(state = 1) AS not_required, countIf(state = 0) AS unknown
FROM v_update_compliance_status
GROUP BY update_id ORDER BY update_id`

const out = { client: '@clickhouse/client', version }
out.ping = (await client.ping()).success
const start = performance.now()
const rs = await client.query({ query, format: 'JSONEachRow' })
const rows = await rs.json()
out.latency_ms = Math.round((performance.now() - start) * 100) / 100
out.query_id = rs.query_id
out.rows = rows.map((r) => [r.update_id, Number(r.installed), Number(r.required), Number(r.not_required), Number(r.unknown)])

for (const [key, statement] of [['write_refused', "INSERT INTO ref_updates (id, title) VALUES ('X', 'written')"], ['drop_refused', 'DROP TABLE ref_updates']]) {
  try {
    await client.command({ query: statement })
    out[key] = null
  } catch (e) {
    out[key] = `${e.constructor.name} code ${e.code} type ${e.type}: ${e.message}`
  }
}
await client.close()
console.log(JSON.stringify(out))
