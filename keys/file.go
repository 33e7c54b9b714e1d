package keys

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-jose/go-jose/v4"
)

const (
	// defaultPollInterval re-reads the files even without a watcher event: inotify misses
	// changes on some network and overlay filesystems, and a watch can fail to be set.
	defaultPollInterval = 10 * time.Second
	// settleDelay lets a burst of events (a ConfigMap swap is several) end before reading.
	settleDelay = 100 * time.Millisecond
)

// reloadFile reads src's file and installs its keys if its content changed since the last
// attempt (always at TriggerInitial). A file that cannot be read or parsed, or whose keys
// are refused, keeps the old keys; the failure is reported once per distinct content or
// read error, not at every poll.
func (s *Set) reloadFile(src *source, trigger Trigger) error {
	data, err := readCapped(src.path)
	if err != nil {
		if trigger != TriggerInitial && err.Error() == src.seenErr {
			return err
		}
		src.seen, src.seenErr = [32]byte{}, err.Error()
		s.reportFile(src, trigger, err)
		return err
	}
	sum := sha256.Sum256(data)
	if trigger != TriggerInitial && sum == src.seen {
		return nil
	}
	src.seen, src.seenErr = sum, ""
	parse := parseFile
	if s.private {
		parse = parsePrivateFile
	}
	keys, skipped, err := parse(src.kind, data, src.kid)
	if err == nil {
		var conflicts []error
		conflicts, err = s.install(src, keys)
		skipped = append(skipped, conflicts...)
	}
	s.reportFile(src, trigger, err, skipped...)
	return err
}

func (s *Set) reportFile(src *source, trigger Trigger, err error, skipped ...error) {
	ev := FetchEvent{Kind: src.kind, Source: src.name, Trigger: trigger, Result: ResultOK, Skipped: skipped}
	if err != nil {
		s.setErr(src, err)
		ev.Result, ev.Err = ResultError, err
	}
	ev.Keys = s.keyCount(src)
	s.onFetch(ev)
}

// parseFile parses the content of a key file; skipped are the keys of a JWKS that
// jwt-authz cannot use. Errors never quote the content: it may be a secret.
func parseFile(kind Kind, data []byte, kid string) (keys []*jose.JSONWebKey, skipped []error, err error) {
	var k *jose.JSONWebKey
	switch kind {
	case KindJWKSFile:
		return parseJWKS(data, fromFile)
	case KindSPIFFEBundleFile:
		keys, skipped, _, err = parseSPIFFEBundle(data, fromFile)
		return keys, skipped, err
	case KindPEMFile:
		k, err = parsePEM(data, kid)
	case KindHMACSecretFile:
		k, err = hmacKey(data, kid)
	default:
		err = fmt.Errorf("%s is not a file source: %w", kind, ErrMalformed)
	}
	if err != nil {
		return nil, nil, err
	}
	return []*jose.JSONWebKey{k}, nil, nil
}

// readCapped reads a whole file of at most maxDocSize bytes.
func readCapped(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxDocSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxDocSize {
		return nil, fmt.Errorf("%s: larger than %d bytes: %w", path, maxDocSize, ErrMalformed)
	}
	return data, nil
}

// reloadFiles re-reads every file source; unchanged ones cost a read and a hash.
func (s *Set) reloadFiles(trigger Trigger) {
	for _, src := range s.files {
		_ = s.reloadFile(src, trigger) // reported through OnFetch
	}
}

// watchFiles sets up a watch on the files' directories, then (in the background, until ctx
// is done) reloads the files when a directory changes, and polls as a fallback. It watches
// directories, not files: an editor's or a deployment's atomic rename-over replaces the
// inode a file watch would follow, and a Kubernetes ConfigMap or Secret volume updates by
// swapping its ..data symlink, an event in the directory and none on the file's own path.
// The watch is in place when it returns, and the files are read once more after that, so
// no change made since NewSet read them is missed.
func (s *Set) watchFiles(ctx context.Context) {
	var (
		events <-chan fsnotify.Event
		errs   <-chan error
		w      *fsnotify.Watcher
	)
	if nw, err := s.newWatcher(); err == nil {
		w = nw
		dirs := map[string]bool{}
		for _, src := range s.files {
			dirs[filepath.Dir(src.path)] = true
		}
		for dir := range dirs {
			_ = w.Add(dir) // a directory that cannot be watched is still polled
		}
		events, errs = w.Events, w.Errors
	}
	go func() {
		if w != nil {
			defer w.Close()
		}
		s.reloadFiles(TriggerFileChange)
		poll := time.NewTicker(s.pollInterval)
		defer poll.Stop()
		var settle <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-events:
				if !ok {
					events = nil
				} else if settle == nil {
					settle = time.After(settleDelay)
				}
			case _, ok := <-errs:
				if !ok {
					errs = nil // overflow or a closed watch: the poll catches what was missed
				}
			case <-settle:
				settle = nil
				s.reloadFiles(TriggerFileChange)
			case <-poll.C:
				s.reloadFiles(TriggerFileChange)
			}
		}
	}()
}
