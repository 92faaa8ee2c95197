package policy

import "fmt"

// validate checks what no single attribute shows: combinations of
// settings. Attribute values were checked while decoding.
func (d *decoder) validate() {
	t := d.cfg.Upstream.TLS
	if t.Mode == TLSVerifyFull {
		return
	}
	for _, name := range []string{"ca_file", "server_name"} {
		if a := d.attrs["upstream.tls."+name]; a != nil {
			d.errorAt(a, "Setting without effect", fmt.Sprintf(
				"upstream.tls.%s is only used to verify the server, with mode = %q; with mode = %q it would be ignored.",
				name, TLSVerifyFull, t.Mode))
		}
	}
}
