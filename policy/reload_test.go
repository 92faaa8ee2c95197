package policy

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// reloadClasses are the classes a `reload` tag may name.
var reloadClasses = []string{ReloadApply, ReloadRestart, ReloadRefuse}

func TestEveryConfigFieldHasAReloadClass(t *testing.T) {
	var check func(t *testing.T, typ reflect.Type, path string, top bool)
	check = func(t *testing.T, typ reflect.Type, path string, top bool) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag, ok := f.Tag.Lookup("reload")
			where := path + "." + f.Name
			if !ok {
				t.Errorf("%s has no reload tag: say how a reload treats a change of it (see policy/reload.go)", where)
				continue
			}
			if tag == "-" {
				continue
			}
			if !f.IsExported() {
				t.Errorf("%s is unexported and compared (%q): ReloadDiff cannot read it", where, tag)
				continue
			}
			name, class, _ := strings.Cut(tag, ",")
			if name == "" || (top && class == "") || (class != "" && !slices.Contains(reloadClasses, class)) {
				t.Errorf("%s has the reload tag %q: want \"<name>,<class>\" (class one of %v)%s", where, tag, reloadClasses,
					map[bool]string{true: "", false: " or \"<name>\" inside a block"}[top])
				continue
			}
			if class == ReloadApply {
				continue
			}
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				check(t, ft, where, false)
			}
		}
	}
	check(t, reflect.TypeFor[Config](), "Config", true)
}

// fullConfig returns a configuration whose compared fields are all set.
func fullConfig() *Config {
	return &Config{
		Files: []string{"a.hcl"},
		Listen: Listen{Address: "127.0.0.1:6432", Database: "db", StartupTimeout: time.Second,
			ShutdownTimeout: time.Minute, MaxMessageSize: 1 << 20,
			TLS: &ListenTLS{CertFile: "c.pem", KeyFile: "k.pem", Require: true, ClientCAFile: "ca.pem",
				ClientCRLFile: "crl.pem", ClientName: ClientNameCN}},
		Upstream: Upstream{Address: "127.0.0.1:5432", Database: "db", User: "svc", Password: "pw",
			SearchPath: "public", ConnectTimeout: time.Second,
			TLS:  UpstreamTLS{Mode: TLSVerifyFull, CAFile: "up.pem", ServerName: "db.example"},
			Pool: Pool{Mode: PoolTransaction, Size: 20, WaitTimeout: 5 * time.Second, IdleTimeout: 10 * time.Minute, KeepIdle: 100}},
		Audit: &Audit{File: "audit.log", MaxSize: 100, QueueSize: 10, OnFull: AuditBlock, Key: []byte("k"),
			RewrittenSQL: AuditFull, RedactLiterals: true},
		Admin: &Admin{Address: "127.0.0.1:9187"},
		Rules: []*Rule{{Name: "r"}},
	}
}

// comparedLeaves calls f with the path of each compared field of v that
// is not a block of its own, and the field.
func comparedLeaves(v reflect.Value, path string, f func(path string, field reflect.Value)) {
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	for i := range v.NumField() {
		tag := v.Type().Field(i).Tag.Get("reload")
		if tag == "-" || strings.HasSuffix(tag, ","+ReloadApply) {
			continue
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct || (fv.Kind() == reflect.Pointer && fv.Type().Elem().Kind() == reflect.Struct) {
			comparedLeaves(fv, path+"."+v.Type().Field(i).Name, f)
			continue
		}
		f(path+"."+v.Type().Field(i).Name, fv)
	}
}

// change sets a field of a basic kind to another value.
func change(t *testing.T, path string, v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Slice:
		v.Set(reflect.Append(v, reflect.Zero(v.Type().Elem())))
	default:
		t.Fatalf("%s: cannot change a %s in this test", path, v.Kind())
	}
}

func TestReloadDiffReportsEveryComparedField(t *testing.T) {
	if ch := ReloadDiff(fullConfig(), fullConfig()); ch.Refuse != nil || ch.Restart != nil {
		t.Fatalf("equal configurations differ: %+v", ch)
	}
	n := 0
	comparedLeaves(reflect.ValueOf(fullConfig()), "Config", func(path string, _ reflect.Value) {
		n++
		t.Run("a change of "+path+" is reported", func(t *testing.T) {
			b := fullConfig()
			comparedLeaves(reflect.ValueOf(b), "Config", func(p string, v reflect.Value) {
				if p == path {
					change(t, p, v)
				}
			})
			if ch := ReloadDiff(fullConfig(), b); len(ch.Refuse)+len(ch.Restart) != 1 {
				t.Errorf("changes %+v, want one", ch)
			}
		})
	})
	if n < 20 {
		t.Errorf("only %d compared fields: the walk is broken", n)
	}
}

func TestReloadDiff(t *testing.T) {
	tests := []struct {
		name          string
		edit          func(c *Config)
		refuse, start []string
	}{
		{"a rule or a user changes nothing a reload cannot apply", func(c *Config) {
			c.Rules = nil
			c.Users = map[string]*User{"u": {Login: "u"}}
			c.Files = []string{"b.hcl"}
		}, nil, nil},
		{"a new listen address applies at the next restart", func(c *Config) { c.Listen.Address = ":1" }, nil, []string{"listen"}},
		{"a new client CA applies at the next restart", func(c *Config) { c.Listen.TLS.ClientCAFile = "other.pem" }, nil, []string{"listen"}},
		{"removing listen TLS applies at the next restart", func(c *Config) { c.Listen.TLS = nil }, nil, []string{"listen"}},
		{"the provisioned TLS configuration is not compared", func(c *Config) { c.Listen.TLS.Config = nil; c.Upstream.TLS.RootCAs = nil }, nil, nil},
		{"a new audit key applies at the next restart", func(c *Config) { c.Audit.Key = []byte("other") }, nil, []string{"audit"}},
		{"adding or removing admin applies at the next restart", func(c *Config) { c.Admin = nil }, nil, []string{"admin"}},
		{"another upstream address refuses the reload", func(c *Config) { c.Upstream.Address = "db:5432" }, []string{"upstream.address"}, nil},
		{"another upstream TLS mode refuses the reload", func(c *Config) {
			c.Upstream.TLS.Mode = TLSRequire
			c.Upstream.TLS.ServerName = ""
		}, []string{"upstream.tls"}, nil},
		{"a new service password applies at the next restart", func(c *Config) { c.Upstream.Password = "new" }, nil, []string{"upstream.password"}},
		{"a new pool size applies at the next restart", func(c *Config) { c.Upstream.Pool.Size = 50 }, nil, []string{"upstream.pool"}},
		{"a new per-login cap of the pool applies at the next restart", func(c *Config) { c.Upstream.Pool.MaxPerUser = 5 }, nil, []string{"upstream.pool"}},
		{"another pool mode applies at the next restart", func(c *Config) { c.Upstream.Pool.Mode = PoolSession }, nil, []string{"upstream.pool"}},
		{"pool changes beside a refused upstream change are reported too", func(c *Config) {
			c.Upstream.Address = "db:5432"
			c.Upstream.Pool.WaitTimeout = time.Second
			c.Upstream.Pool.IdleTimeout = time.Hour
		}, []string{"upstream.address"}, []string{"upstream.pool"}},
		{"several changes are reported in field order", func(c *Config) {
			c.Admin.Address = ":2"
			c.Listen.MaxMessageSize = 1
			c.Upstream.SearchPath = "x"
			c.Upstream.User = "y"
			c.Upstream.ConnectTimeout = time.Hour
		}, []string{"upstream.user", "upstream.search_path"}, []string{"listen", "upstream.connect_timeout", "admin"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := fullConfig()
			tt.edit(b)
			ch := ReloadDiff(fullConfig(), b)
			if !slices.Equal(ch.Refuse, tt.refuse) || !slices.Equal(ch.Restart, tt.start) {
				t.Errorf("refuse %q, restart %q; want %q, %q", ch.Refuse, ch.Restart, tt.refuse, tt.start)
			}
		})
	}
}
