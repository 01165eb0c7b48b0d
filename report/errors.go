package report

import (
	"context"
	"fmt"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// ErrorsParams scope the errors report.
type ErrorsParams struct {
	// Deployment restricts the report to one deployment: its target collection's clients,
	// their update enforcement (402) of the deployment's updates and their enforcement (301)
	// of the deployment itself. Empty: every client of the site, every update and deployment.
	Deployment string
}

// Errors is the errors report (DESIGN §4): HRESULTs of live enforcement states stack-ranked by
// how many machines have them.
type Errors struct {
	Site         string       `json:"site"`
	AsOf         time.Time    `json:"as_of"`
	DeploymentID string       `json:"deployment_id,omitempty"`
	Errors       []ErrorCount `json:"errors"`
}

// ErrorCount is one HRESULT and the machines whose live 402 or 301 state carries it.
type ErrorCount struct {
	Error       int32  `json:"error"`       // as it travels: a signed 32-bit integer
	Hex         string `json:"hex"`         // 0x%08X, as Windows shows it
	Description string `json:"description"` // from schema.HRESULTs; "" when unknown
	Machines    int64  `json:"machines"`
}

// ErrorsReport computes the errors report of site (database db): per HRESULT, the distinct
// clients whose live update enforcement (402) or deployment enforcement (301) state carries it
// (error != 0), most machines first, then by error. A client failing several updates with one
// code counts once for it.
func ErrorsReport(ctx context.Context, q Querier, db, site string, p ErrorsParams) (*Errors, error) {
	where := "topic_type IN (301, 402)"
	if p.Deployment != "" {
		dep, err := lookupDeployment(ctx, q, db, p.Deployment)
		if err != nil {
			return nil, err
		}
		d := Quote(p.Deployment)
		where = fmt.Sprintf(`((topic_type = 402 AND topic_id IN (SELECT arrayJoin(updates) FROM %[1]s.v_deployments WHERE id = %[2]s))
		    OR (topic_type = 301 AND topic_id = %[2]s))
		AND client IN (%[3]s)`, db, d, Scope{Collection: dep.collection}.clientsSQL(db))
	}
	res, err := q.Query(ctx, fmt.Sprintf(`SELECT error, uniqExact(client) AS machines
	FROM %s.v_live_state
	WHERE error != 0 AND %s
	GROUP BY error
	ORDER BY machines DESC, error ASC`, db, where))
	if err != nil {
		return nil, fmt.Errorf("cannot count enforcement errors: %w", err)
	}
	rep := &Errors{Site: site, AsOf: time.Now().UTC(), DeploymentID: p.Deployment, Errors: make([]ErrorCount, len(res.Rows))}
	c := cells{what: "enforcement errors"}
	for i, r := range res.Rows {
		code := int32(c.int(r, 0))
		rep.Errors[i] = ErrorCount{Error: code, Hex: schema.HRESULTHex(code), Description: schema.DescribeHRESULT(code), Machines: c.int(r, 1)}
	}
	if c.err != nil {
		return nil, c.err
	}
	return rep, nil
}
