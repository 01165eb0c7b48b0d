// Package configmgr translates Configuration Manager (ConfigMgr, SCCM) state message
// documents — the XML a ConfigMgr client posts to its management point, kept as .smx files —
// into statepipe reports (schema.Report). Ingest's POST /v1/configmgr/reports calls
// TranslateBatch on what a gateway relays (statepipe configmgr import, or a relay of its own)
// and takes each report the way it takes a client's.
//
// It owns the reading of that XML and the mapping below, nothing else: it does no I/O, keeps
// no state between calls (every function is safe for concurrent use) and must not know about
// HTTP, Kafka, signing or the store. It must never return a report that fails
// (*schema.Report).Validate, nor part of a document: a document with any problem yields an
// error and no report.
//
// # Document
//
//	Report
//	  ReportHeader
//	    Identification/Machine: ClientInstalled, ClientType, ClientID, ClientVersion,
//	                            NetBIOSName, CodePage, SystemDefaultLCID (others ignored)
//	    ReportDetails: ReportContent, ReportType, Date, Version, Format
//	  ReportBody
//	    StateMessage @MessageTime @SerialNumber        (one or more)
//	      Topic @ID @Type @IDType @User @UserSID
//	      State @ID @Criticality
//	      StateDetails @Type (CDATA)                   (optional, not carried)
//	      UserParameters @Flags @Count                 (optional)
//	        Param                                      (text; 0 or more)
//
// Elements may come in any order within their parent; elements not named here are skipped.
// Element texts are trimmed of surrounding white space, Param texts are kept as they are.
//
// # Mapping
//
//	ConfigMgr                                   statepipe
//	------------------------------------------  ------------------------------------------------
//	ReportHeader/Identification/Machine/        client, as written ("GUID:1af488d8-…"); it must
//	  ClientID                                  be an id schema accepts (≤ 128 bytes, no
//	                                            control characters)
//	(the site argument)                         site
//	ReportHeader/ReportDetails/ReportType       Full: full_types = the keyed topic types below
//	                                            present in the document (ascending); Delta:
//	                                            none (case is ignored; anything else: error)
//	StateMessage@SerialNumber                   serial (decimal, 1 ≤ n < 2^40, unique per document;
//	                                            ingest files it above the gateway's relay base,
//	                                            schema.RelayBase)
//	StateMessage@MessageTime                    time, Unix ms: WMI datetime
//	                                            20120924183328.000000+000 (offset in minutes)
//	                                            or ISO 8601 2012-09-24T18:33:28Z (no zone: UTC);
//	                                            1900 ≤ year < 2300 (what the store can hold)
//	Topic@Type                                  topic_type (table below)
//	Topic@ID                                    topic_id (keyed types; 700/701 carry none)
//	State@ID                                    state (within the type's range, below)
//	UserParameters/Param                        params, in document order (≤ 16 of ≤ 1 KiB)
//	Param holding a failure HRESULT             error, for 301, 402 and 501 only (below); else 0
//	Machine/*                                   Result.Machine, not in the report
//	StateDetails, Topic@IDType/@User/@UserSID,  not carried
//	  State@Criticality, UserParameters@Flags/
//	  @Count, ReportContent/Date/Version/Format
//
// ReportContent, when present, must say "State Message Data": another kind of ConfigMgr
// report is refused rather than misread.
//
// # Topic types
//
//	Topic@Type  ConfigMgr (STATE_TOPICTYPE_…)  statepipe               states  error
//	----------  -----------------------------  ----------------------  ------  --------------------
//	300         SUM_ASSIGNMENT_COMPLIANCE      deployment compliance   0–3     0
//	301         SUM_ASSIGNMENT_ENFORCEMENT     deployment enforcement  0–10*   first failure Param
//	302         SUM_ASSIGNMENT_EVALUATION      deployment evaluation   0–3     0
//	402         SUM_CI_ENFORCEMENT             update enforcement      0–14*   first failure Param
//	500         SUM_UPDATE_DETECTION           update compliance       0–3     0
//	501         SUM_UPDATE_SOURCE_SCAN         update source scan      0–6     0
//	700         RESYNC_STATE_MSG               resync (unkeyed)        0       0
//	701         SYSTEM_HEARTBEAT               heartbeat (unkeyed)     0       0
//	any other   (100 state migration, 200 NAP, 400 CI detection, 401 CI compliance, 403, 600,
//	            800, 1000–1004, …): skipped and counted by type in Result.Skipped, never an
//	            error; a document of only such messages yields no report and no error
//
// The ranges are schema's (TopicType.StateCount); a state outside them is an error, not a
// skip, except (*) a state of 301 or 402 above its range up to MaxAddedState (63): ConfigMgr
// has added states to its enforcement types over its versions (301 11 "Waiting for
// orchestration" and 12 "Waiting for superseding update" in current branch), and a feed must
// not fail for them. Such a message is skipped and counted by "type/state" in
// Result.SkippedStates: the key keeps its last modelled state, and a Full document does not
// mark its type full (the document would otherwise remove the key it does not describe). Of a
// skipped message only the structure and Topic@Type are checked (and for an added state, the
// serial, time and topic id).
//
// A Full document marks full only the types it carries: a keyed type with no message in it
// is not emptied (statepipe cannot tell "none" from "not reported" there).
//
// # The HRESULT of an enforcement or scan message
//
// For the types whose errors statepipe counts (301 and 402, the enforcement errors, and 501, a
// failed scan's: schema.TopicType.CountsErrors) error is the
// first Param whose text is a failure HRESULT: "0x" and 1–8 hex digits, or a decimal that fits
// int32 or uint32, with the severity (high) bit set — 0x80240022, 2149842978 and -2145124318
// are the same code, stored as the int32 -2145124318. Params that are not (revision numbers,
// counts, GUIDs, 0, and -1 = 0xFFFFFFFF, a count's or an index's "none") are passed over; no
// such Param gives 0. This is a choice, not a documented
// ConfigMgr rule: the SDK documents Param only as "a custom parameter" (0 to 5 of them), and
// no public sample of a 301 or 402 message with its parameters was found. The one public
// software update sample, a 500 message in Microsoft's troubleshooting guide, carries the
// update's revision number as its only Param: requiring the severity bit keeps such a number
// (or a count) from being read as an error.
//
// # Encodings
//
// ConfigMgr writes UTF-16 with a byte order mark and declares encoding="UTF-16"; UTF-8 with or
// without a BOM is read too. The encoding is taken from the BOM (or, without one, from a NUL
// in the first two bytes: UTF-16 without a BOM), the document is transcoded to UTF-8 and the
// declaration is then accepted when it names UTF-8 or UTF-16 (whatever the bytes were: files
// re-saved by editors often keep a stale declaration); any other declared encoding is refused.
// Unpaired UTF-16 surrogates become U+FFFD.
//
// # Errors
//
// A problem in a document is an *Error naming the element by its path from Report (XPath-like,
// StateMessage counted from 1) and the attribute, with a class for errors.Is (ErrMalformed,
// ErrMissing, ErrInvalid, ErrTooLarge):
//
//	ReportBody/StateMessage[3]/State@ID: 64 is out of range for topic type 402 (0–14; 15–63, …)
//
// Bounds: a document (or a TranslateBatch body) of more than MaxInputBytes, elements nested
// more than MaxDepth deep, more StateMessage elements than schema.DefaultLimits.MaxMessages,
// or more or longer Params than it allows are refused with ErrTooLarge. Memory stays within a
// few times the input: the input, its UTF-8 copy and the report.
package configmgr
