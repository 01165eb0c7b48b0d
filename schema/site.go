package schema

// SiteCodeRule is the site-code rule in words, for error messages and help.
const SiteCodeRule = "1-16 characters A-Z, 0-9"

// ValidSiteCode reports whether code is a site code: 1-16 characters A-Z, 0-9 (ConfigMgr's
// three-character codes fit). A site code names the site's topics (state.<site>), its database
// (statepipe_<site>) and its place in a topology, so it holds nothing a topic or database name
// could not.
func ValidSiteCode(code string) bool {
	if len(code) == 0 || len(code) > 16 {
		return false
	}
	for i := 0; i < len(code); i++ {
		if c := code[i]; (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
