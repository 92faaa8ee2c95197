package policy

import "fmt"

// validate checks what no single attribute shows: combinations of
// settings. Attribute values were checked while decoding.
func (d *decoder) validate() {
	d.validateClientCerts()
	d.validatePoolCaps()
	d.validateForwardable()
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

// validatePoolCaps checks that no user block caps its pooled backends
// above the pool's size, which no login could reach.
func (d *decoder) validatePoolCaps() {
	size := d.cfg.Upstream.Pool.Size
	for _, login := range sortedKeys(d.cfg.Users) {
		n := d.cfg.Users[login].MaxPoolBackends
		if a := d.attrs["user."+login+".max_pool_backends"]; a != nil && n > size {
			d.errorAt(a, "Invalid number", fmt.Sprintf(
				"user.%s.max_pool_backends (%d) must not exceed upstream.pool.size (%d): no login could hold more backends than the pool opens.",
				login, n, size))
		}
	}
}

// validateClientCerts checks that users with auth = "cert" can log in: a
// listen tls block with client_ca_file, and no password that would be
// ignored; and that the client certificate settings have a CA.
func (d *decoder) validateClientCerts() {
	lt := d.cfg.Listen.TLS
	hasCA := lt != nil && lt.ClientCAFile != ""
	for _, login := range sortedKeys(d.cfg.Users) {
		u := d.cfg.Users[login]
		if u.Method() == AuthLDAP {
			a := d.attrs["user."+login+".auth"]
			if d.cfg.LDAP == nil {
				d.errorAt(a, "No LDAP directory", fmt.Sprintf(
					"User %q logs in with an LDAP password, which needs an ldap block saying how to reach the directory.", login))
			}
			if pa := d.attrs["user."+login+".password"]; pa != nil {
				d.errorAt(pa, "Setting without effect", fmt.Sprintf(
					"User %q logs in with an LDAP password (auth = %q); this password would never be checked.", login, AuthLDAP))
			}
		}
		if u.Method() != AuthCert {
			continue
		}
		a := d.attrs["user."+login+".auth"]
		if !hasCA {
			d.errorAt(a, "No client CA", fmt.Sprintf(
				"User %q logs in with a client certificate, which needs listen.tls.client_ca_file: the CAs trusted to sign it.", login))
		}
		if pa := d.attrs["user."+login+".password"]; pa != nil {
			d.errorAt(pa, "Setting without effect", fmt.Sprintf(
				"User %q logs in with a client certificate (auth = %q); its password would never be checked.", login, AuthCert))
		}
	}
	if lt != nil && !hasCA {
		for _, name := range []string{"client_crl_file", "client_name"} {
			if a := d.attrs["listen.tls."+name]; a != nil {
				d.errorAt(a, "Setting without effect", fmt.Sprintf(
					"listen.tls.%s is only used to check client certificates, which need listen.tls.client_ca_file.", name))
			}
		}
	}
}
