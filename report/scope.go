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
	// Tree is the part of a site hierarchy the answer covers (tree.go); nil for a standalone
	// site. In a hierarchy a site counts only the members of a collection it has heard from.
	Tree *Tree
}

// clientsSQL returns a subquery with one column, client, listing the clients in scope.
func (s Scope) clientsSQL(db string) string {
	if s.Collection != "" && s.Tree != nil {
		return fmt.Sprintf("SELECT DISTINCT client FROM %[1]s.v_collection_members WHERE collection = %[2]s AND client IN (SELECT client FROM %[1]s.clients)", db, Quote(s.Collection))
	}
	if s.Collection != "" {
		return fmt.Sprintf("SELECT DISTINCT client FROM %s.v_collection_members WHERE collection = %s", db, Quote(s.Collection))
	}
	return fmt.Sprintf("SELECT DISTINCT client FROM %s.clients", db)
}

// check returns the collection's name, or an error naming the collection when it is not
// imported ("" for the whole site).
func (s Scope) check(ctx context.Context, q Querier, db string) (string, error) {
	if s.Collection == "" {
		return "", nil
	}
	res, err := q.Query(ctx, fmt.Sprintf("SELECT name FROM %s.v_collections WHERE id = %s", db, Quote(s.Collection)))
	if err != nil {
		return "", err
	}
	if len(res.Rows) == 0 {
		return "", &NotFoundError{Field: "collection", Message: fmt.Sprintf("no collection %q at this site (import it with statepipe collections apply; an import made with --no-wait, or by another process, shows once the site folds it, within seconds)", s.Collection)}
	}
	var name string
	return name, scanRow(res, 0, "collection "+s.Collection, &name)
}

// NotFoundError is a report parameter that names something the site does not have.
type NotFoundError struct {
	Field, Message string
}

func (e *NotFoundError) Error() string { return e.Message }

// listUpdates returns the name and update ids of an imported update list.
func listUpdates(ctx context.Context, q Querier, db, list string) (string, []string, error) {
	res, err := q.Query(ctx, fmt.Sprintf("SELECT name, updates FROM %s.v_update_lists WHERE id = %s", db, Quote(list)))
	if err != nil {
		return "", nil, err
	}
	if len(res.Rows) == 0 {
		return "", nil, &NotFoundError{Field: "list", Message: fmt.Sprintf("no update list %q at this site (import it with statepipe lists apply; an import made with --no-wait, or by another process, shows once the site folds it, within seconds)", list)}
	}
	var name string
	var ids []string
	err = scanRow(res, 0, "update list "+list, &name, &ids)
	return name, ids, err
}

// checkUpdates returns a NotFoundError naming updates for the first id that is neither in the
// catalog nor reported by any client (a typo would otherwise count as Unknown everywhere).
func checkUpdates(ctx context.Context, q Querier, db string, ids []string, tree *Tree) error {
	if len(ids) == 0 {
		return nil
	}
	set := inList(ids)
	below := ""
	if tree.Below() {
		below = fmt.Sprintf(`
	UNION DISTINCT SELECT DISTINCT topic_id FROM %s.v_tree_agg_states WHERE %s AND topic_type IN (402, 500) AND topic_id IN %s`, db, tree.originFilter(), set)
	}
	res, err := q.Query(ctx, fmt.Sprintf(`SELECT id FROM %[1]s.v_updates WHERE id IN %[2]s
	UNION DISTINCT SELECT DISTINCT topic_id FROM %[1]s.v_live_state WHERE topic_type IN (402, 500) AND topic_id IN %[2]s%[3]s`, db, set, below))
	if err != nil {
		return fmt.Errorf("cannot look up updates: %w", err)
	}
	known, err := stringColumn(res, 0, "known updates")
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(known))
	for _, id := range known {
		seen[id] = true
	}
	var unknown []string
	for _, id := range ids {
		if !seen[id] {
			unknown = append(unknown, id)
		}
	}
	switch len(unknown) {
	case 0:
		return nil
	case 1:
		return &NotFoundError{Field: "updates", Message: fmt.Sprintf("no update %q at this site: not in the catalog and no client reported it", unknown[0])}
	}
	return &NotFoundError{Field: "updates", Message: fmt.Sprintf("no update %q at this site, nor %d more of updates: not in the catalog and no client reported them", unknown[0], len(unknown)-1)}
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
	if _, err := s.check(ctx, q, db); err != nil {
		return nil, err
	}
	res, err := q.Query(ctx, "SELECT client FROM ("+s.clientsSQL(db)+") ORDER BY client")
	if err != nil {
		return nil, err
	}
	return stringColumn(res, 0, "the clients in scope")
}
