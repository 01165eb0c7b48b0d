package schema

import "fmt"

// HRESULTs describes the HRESULT codes most often seen in update deployments: Windows Update
// Agent (WU_E_*), Win32 errors wrapped as HRESULTs (0x8007xxxx), servicing stack (CBS) and
// ConfigMgr client (0x87Dxxxxx) codes. Keys are the code as an unsigned 32-bit value, written
// the way administrators search for it (0x8024402C); values are short descriptions, with the
// symbolic name first where there is one.
//
// The errors report and its CLI look codes up here (DescribeHRESULT). To extend the table, add
// entries in the importing program before it serves reports — the map is read without locks:
//
//	schema.HRESULTs[0x80249999] = "MY_E_THING: what it means"
//
// Entries are from Microsoft's published Windows Update Agent and ConfigMgr error references;
// where a code's text is not certain only its symbolic name is given.
var HRESULTs = map[uint32]string{
	// Windows Update Agent: general (0x80240xxx).
	0x8024000B: "WU_E_CALL_CANCELLED: the operation was cancelled",
	0x80240016: "WU_E_INSTALL_NOT_ALLOWED: another installation was in progress or the system was pending a mandatory restart",
	0x80240017: "WU_E_NOT_APPLICABLE: the operation was not performed because there are no applicable updates",
	0x8024001E: "WU_E_SERVICE_STOP: the operation did not complete because the service or system was being shut down",
	0x80240020: "WU_E_NO_INTERACTIVE_USER: the operation did not complete because there is no logged-on interactive user",
	0x80240022: "WU_E_ALL_UPDATES_FAILED: the operation failed for all the updates",
	0x8024002E: "WU_E_WU_DISABLED: access to an unmanaged server is not allowed",
	0x80240438: "WU_E_PT_ENDPOINT_UNREACHABLE: there is no route or network connectivity to the update service endpoint",
	0x80240FFF: "WU_E_UNEXPECTED: an operation failed for a reason not covered by another error code",

	// Windows Update Agent: update handler (0x80242xxx).
	0x8024200D: "WU_E_UH_NEEDANOTHERDOWNLOAD: the update was not installed because it needs to be downloaded again",
	0x80242016: "WU_E_UH_POSTREBOOTUNEXPECTEDSTATE: the state of the update after its post-reboot operation is unexpected",

	// Windows Update Agent: protocol talker, the client's conversation with the update server
	// (0x80244xxx; the WU_E_PT_HTTP_STATUS_* codes are the server's HTTP status).
	0x8024400A: "WU_E_PT_SOAPCLIENT_PARSE: the update agent could not parse the update server's SOAP response",
	0x80244010: "WU_E_PT_EXCEEDED_MAX_SERVER_TRIPS: the number of round trips to the update server exceeded the maximum",
	0x80244016: "WU_E_PT_HTTP_STATUS_BAD_REQUEST: HTTP 400, the server could not process the request",
	0x80244017: "WU_E_PT_HTTP_STATUS_DENIED: HTTP 401, the requested resource requires user authentication",
	0x80244018: "WU_E_PT_HTTP_STATUS_FORBIDDEN: HTTP 403, the server understood the request but refuses to fulfil it",
	0x80244019: "WU_E_PT_HTTP_STATUS_NOT_FOUND: HTTP 404, the server cannot find the requested URL",
	0x8024401B: "WU_E_PT_HTTP_STATUS_PROXY_AUTH_REQ: HTTP 407, proxy authentication is required",
	0x8024401C: "WU_E_PT_HTTP_STATUS_REQUEST_TIMEOUT: HTTP 408, the server timed out waiting for the request",
	0x8024401F: "WU_E_PT_HTTP_STATUS_SERVER_ERROR: HTTP 500, an error internal to the server prevented fulfilling the request",
	0x80244021: "WU_E_PT_HTTP_STATUS_BAD_GATEWAY: HTTP 502, a gateway or proxy received an invalid response upstream",
	0x80244022: "WU_E_PT_HTTP_STATUS_SERVICE_UNAVAIL: HTTP 503, the service is temporarily overloaded",
	0x80244023: "WU_E_PT_HTTP_STATUS_GATEWAY_TIMEOUT: HTTP 504, the request timed out waiting for a gateway",
	0x8024402C: "WU_E_PT_WINHTTP_NAME_NOT_RESOLVED: the proxy or update server name cannot be resolved",

	// Windows Update Agent: Automatic Updates (0x8024Axxx).
	0x8024A000: "WU_E_AU_NOSERVICE: Automatic Updates was unable to service incoming requests",

	// Win32 errors as HRESULTs (0x8007xxxx = FACILITY_WIN32 with the Win32 error code).
	0x80070002: "ERROR_FILE_NOT_FOUND: the system cannot find the file specified",
	0x80070005: "E_ACCESSDENIED: access is denied",
	0x8007000E: "E_OUTOFMEMORY: not enough memory resources are available to complete the operation",
	0x80070020: "ERROR_SHARING_VIOLATION: the file is being used by another process",
	0x80070070: "ERROR_DISK_FULL: there is not enough space on the disk",
	0x80070422: "ERROR_SERVICE_DISABLED: the service cannot be started because it is disabled",
	0x80070643: "ERROR_INSTALL_FAILURE: fatal error during installation",
	0x80070BC2: "ERROR_SUCCESS_REBOOT_REQUIRED: the operation succeeded; changes take effect after a restart",
	0x80070BC9: "ERROR_FAIL_REBOOT_REQUIRED: the operation failed; a restart is required to roll back changes made",
	0x80072EE2: "ERROR_INTERNET_TIMEOUT: the connection to the server timed out",
	0x80072EFD: "ERROR_INTERNET_CANNOT_CONNECT: a connection with the server could not be established",
	0x80073712: "ERROR_SXS_COMPONENT_STORE_CORRUPT: the component store has been corrupted",

	// Servicing stack (CBS).
	0x800F081F: "CBS_E_SOURCE_MISSING: the source files for the package could not be found",
	0x800F0922: "CBS_E_INSTALLERS_FAILED: processing advanced installers and generic commands failed",

	// ConfigMgr client.
	0x87D00324: "the application (update) was not detected after installation completed",
	0x87D00667: "no current or future service window exists to install software updates",
	0x87D00692: "group policy conflict: a domain Windows Update policy conflicts with the ConfigMgr client's settings",
}

// HRESULTHex formats an HRESULT the way Windows shows it: 0x%08X of its unsigned value.
func HRESULTHex(code int32) string { return fmt.Sprintf("0x%08X", uint32(code)) }

// DescribeHRESULT returns the description of an HRESULT, or "" when the table does not know it.
func DescribeHRESULT(code int32) string { return HRESULTs[uint32(code)] }
