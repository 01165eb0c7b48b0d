package schema

// PeekSite finds the site a report names from the first bytes of its body (prefix), without
// decoding the rest: the report's keys are read in order until "site", and every other
// key's value is skipped, with the decoders' own bounds. It reports false when the prefix
// ends first, holds no site, or is malformed — a process serving several sites then hands
// the report to one that refuses it naming the field. Clients (the SDK, statepipe client
// send) write "site" before "messages", so a few hundred bytes find it.
func PeekSite(prefix []byte, json bool) (string, bool) {
	if json {
		d := jsonDecoder{b: prefix, lim: DefaultLimits, budget: allocBudget(len(prefix)), size: len(prefix)}
		d.ws()
		if d.peek() != '{' {
			return "", false
		}
		d.off++
		for i := 0; ; i++ {
			key, ok, err := d.member(i)
			if err != nil || !ok {
				return "", false
			}
			if reportKey(key) == keySite {
				site, err := d.str(d.lim.MaxIDBytes, 1)
				return site, err == nil
			}
			if d.skipValue(1) != nil {
				return "", false
			}
		}
	}
	d := mpDecoder{b: prefix, lim: DefaultLimits, budget: allocBudget(len(prefix)), size: len(prefix)}
	n, err := d.mapLen()
	if err != nil {
		return "", false
	}
	for range n {
		key, err := d.key()
		if err != nil {
			return "", false
		}
		if reportKey(key) == keySite {
			site, err := d.str(d.lim.MaxIDBytes)
			return site, err == nil
		}
		if d.skip(1) != nil {
			return "", false
		}
	}
	return "", false
}
