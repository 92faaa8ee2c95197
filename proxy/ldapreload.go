package proxy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/pgveil/pgveil/internal/ldapauth"
	"github.com/pgveil/pgveil/policy"
)

// directoryGroups are a directory login's groups as a reload read them
// again from the directory. gen counts the changes: it tags the version
// of the session's statements (groupsVersion), so that a statement
// prepared or a portal bound under other groups is checked again before
// it runs, as after a policy change.
type directoryGroups struct {
	groups []string
	gen    uint64
}

// groupsTag separates, in a statement's version, the policy version from
// the generation of the session's directory groups.
const groupsTag = "\x00directory_groups:"

// groupsVersion returns policy version v for a session whose directory
// groups changed gen times since login.
func groupsVersion(v string, gen uint64) string {
	if gen == 0 {
		return v
	}
	return v + groupsTag + strconv.FormatUint(gen, 10)
}

// directoryGroups returns the session's directory groups in force and
// how many times a reload changed them.
func (ss *session) directoryGroups() ([]string, uint64) {
	if d := ss.directory.Load(); d != nil {
		return d.groups, d.gen
	}
	return ss.info.DirectoryGroups, 0
}

// directoryLookups bounds the lookups a reload runs at once.
const directoryLookups = 8

// RefreshDirectory reads again, as l's bind DN, the groups of every
// running directory login, so that the groups a person left in the
// directory stop applying at a reload, not only at the next login. The
// sessions of a person the directory no longer holds are ended; the
// new groups of the others apply from their next statement (and
// EndSessionsOf ends those they give no role). It returns how many
// sessions it ended.
//
// The lookups run concurrently, all within l's timeout: a directory that
// is down or hangs delays the caller by that timeout at most and blocks
// no session. A session whose groups could not be read keeps those it
// had, with a warning in the log: ending every directory session because
// the directory is unavailable for a moment would turn an outage of the
// directory into one of the database.
//
// Without a bind DN (simple bind, or an anonymous search) the groups
// cannot be read without the person's password: they change at the next
// login only, and the log says so once.
//
// The directory's answers about the end users BI services act for are
// forgotten, and the groups of those sessions act for now are read
// again with the others' (refreshActing).
func (s *Server) RefreshDirectory(ctx context.Context, l *policy.LDAP, log *zap.Logger) int {
	s.actDir.clear()
	epoch := s.actDir.currentEpoch()
	s.mu.Lock()
	var sessions, acting []*session
	for ss := range s.sessions {
		if ss.info.Directory {
			sessions = append(sessions, ss)
		}
		if a := ss.acting.Load(); a != nil && a.dir != nil {
			acting = append(acting, ss)
		}
	}
	s.mu.Unlock()
	if len(sessions)+len(acting) == 0 || l == nil {
		return 0
	}
	if !l.Directory.CanLookup() {
		// NOTE: a session acting for a directory person then falls back
		// to her roles without groups (server.Policies), as before.
		if len(sessions) == 0 {
			return 0
		}
		log.Warn("the directory groups of running sessions are not read again at a reload: "+
			"without base_dn and bind_dn pgveil needs the person's password to read them; group changes apply at the next login",
			zap.Int("directory_sessions", len(sessions)))
		return 0
	}

	type found struct {
		res *ldapauth.Result
		err error
	}
	// One lookup per login, however many sessions it has.
	var logins []string
	for _, ss := range sessions {
		logins = append(logins, ss.info.User)
	}
	for _, ss := range acting {
		if a := ss.acting.Load(); a != nil {
			logins = append(logins, a.login)
		}
	}
	slices.Sort(logins)
	logins = slices.Compact(logins)
	results := make(map[string]*found, len(logins))
	timeout := l.Directory.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, directoryLookups)
	)
	start := time.Now()
	for _, login := range logins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var f found
			select {
			case sem <- struct{}{}:
				f.res, f.err = l.Directory.Lookup(ctx, login)
				<-sem
			case <-ctx.Done():
				f.err = fmt.Errorf("%w: no answer within %s", ldapauth.ErrUnavailable, timeout)
			}
			mu.Lock()
			results[login] = &f
			mu.Unlock()
		}()
	}
	wg.Wait()

	refreshActing(acting, func(login string) (*ldapauth.Result, error) {
		if f := results[login]; f != nil {
			return f.res, f.err
		}
		return nil, ldapauth.ErrUnavailable
	}, epoch)
	var failed []string
	var firstErr error
	ended := 0
	for _, ss := range sessions {
		f := results[ss.info.User]
		switch {
		case errors.Is(f.err, ldapauth.ErrNotFound):
			ended++
			ss.end(sessionEnd{
				resp: fatal(CodeInvalidAuthorization,
					fmt.Sprintf("pgveil ended the session: the user %q is no longer in the directory", ss.info.User), ""),
				reason: "user removed from the directory, seen by a policy reload",
			})
		case f.err != nil:
			if !slices.Contains(failed, ss.info.User) {
				failed = append(failed, ss.info.User)
			}
			if firstErr == nil {
				firstErr = f.err
			}
		default:
			old, gen := ss.directoryGroups()
			if slices.Equal(old, f.res.Groups) {
				continue
			}
			ss.directory.Store(&directoryGroups{groups: f.res.Groups, gen: gen + 1})
			ss.log.Info("directory groups changed at a policy reload",
				zap.Strings("groups", f.res.Groups), zap.Strings("previous", old))
		}
	}
	if len(failed) > 0 {
		slices.Sort(failed)
		log.Warn("could not read the directory groups of running sessions at a reload; they keep the groups they had",
			zap.Strings("users", failed), zap.Error(firstErr), zap.Duration("after", time.Since(start)))
	}
	return ended
}

// splitGroupsVersion drops the directory groups' generation from a
// policy version.
func splitGroupsVersion(v string) string {
	v, _, _ = strings.Cut(v, groupsTag)
	return v
}
