package schema

// HeaderOrigin names the site that owns a reference-data record of ref.<site> which came down
// the hierarchy: the site where it was imported. The replicator sets it when it copies a
// record of the parent's ref.<parent> into the child's ref.<child> (keeping the value a record
// from further up already carries); records imported at the site itself carry none. Ingest
// refuses an import of a key another site owns (409 conflict): reference data is read-only
// below the site that owns it.
//
//	statepipe-origin: the owning site's code
//
// The header is not covered by statepipe-vouch (the vouch covers topic, key, acceptance time
// and value): it says where to edit a record, it does not prove who wrote it.
const HeaderOrigin = "statepipe-origin"
