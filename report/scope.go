package report

import (
	"context"
	"fmt"
	"strings"
)

// Scope selects the clients a report counts: a collection's members, or every client the site
// has heard from. Clients that are in scope but never reported count as Unknown (compliance)
// or state 0 (deployment): silence is shown, not hidden.
type Scope struct {
	Collection string // empty: the whole site
}

// clientsSQL returns a subquery with one column, client, listing the clients in scope.
func (s Scope) clientsSQL(db string) string {
	if s.Collection != "" {
		return fmt.Sprintf("SELECT DISTINCT client FROM %s.v_collection_members WHERE collection = %s", db, Quote(s.Collection))
	}
	return fmt.Sprintf("SELECT DISTINCT client FROM %s.clients", db)
}

// checkCollection returns an error naming the collection when it is not imported.
func (s Scope) check(ctx context.Context, q Querier, db string) error {
	if s.Collection == "" {
		return nil
	}
	res, err := q.Query(ctx, fmt.Sprintf("SELECT count() FROM %s.v_collections WHERE id = %s", db, Quote(s.Collection)))
	if err != nil {
		return err
	}
	c := cells{what: "collection " + s.Collection}
	n := c.int(c.first(res), 0)
	if c.err != nil {
		return c.err
	}
	if n == 0 {
		return &NotFoundError{Field: "collection", Message: fmt.Sprintf("no collection %q at this site (import it with statepipe collections apply)", s.Collection)}
	}
	return nil
}

// NotFoundError is a report parameter that names something the site does not have.
type NotFoundError struct {
	Field, Message string
}

func (e *NotFoundError) Error() string { return e.Message }

// listUpdates returns the update ids of an imported update list.
func listUpdates(ctx context.Context, q Querier, db, list string) ([]string, error) {
	res, err := q.Query(ctx, fmt.Sprintf("SELECT updates FROM %s.v_update_lists WHERE id = %s", db, Quote(list)))
	if err != nil {
		return nil, err
	}
	if len(res.Rows) == 0 {
		return nil, &NotFoundError{Field: "list", Message: fmt.Sprintf("no update list %q at this site (import it with statepipe lists apply)", list)}
	}
	c := cells{what: "update list " + list}
	ids := c.strs(res.Rows[0], 0)
	return ids, c.err
}

// inList renders ids as a SQL tuple of string literals.
func inList(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = Quote(id)
	}
	return "(" + strings.Join(q, ", ") + ")"
}

// ScopeClients lists the clients in scope (for administrative actions such as resync).
func ScopeClients(ctx context.Context, q Querier, db string, s Scope) ([]string, error) {
	if err := s.check(ctx, q, db); err != nil {
		return nil, err
	}
	res, err := q.Query(ctx, "SELECT client FROM ("+s.clientsSQL(db)+") ORDER BY client")
	if err != nil {
		return nil, err
	}
	return stringColumn(res, 0, "the clients in scope")
}
