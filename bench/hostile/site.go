package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/statepipe/statepipe/bench"
)

// Site is the statepipe process under attack: a child of this program, so that its PID, its
// RSS and its exit are this program's to see, and so that it can be killed and started again
// on the same data directory.
type Site struct {
	Bin, ChdbLib, Data, Cwd, LogDir string
	Listen, KafkaListen             string
	AdminToken, ReaderToken         string
	Extra                           []string // more flags of `statepipe run`

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	exitErr  error
	starts   int
	logPath  string
	expected atomic.Bool // an exit now is the program's own doing (kill -9, SIGTERM)
	crashes  []string    // unexpected exits: when, status, log tail

	pid     atomic.Int64
	rss     atomic.Int64
	peak    atomic.Int64 // greatest RSS since MarkPeak
	subPeak atomic.Int64 // greatest RSS since MarkPeakKeep
	allPeak atomic.Int64
}

// Args are the flags the site runs with.
func (s *Site) Args() []string {
	a := []string{"run", "--data", s.Data, "--listen", s.Listen, "--kafka.listen", s.KafkaListen,
		"--ingest.auth", "required", "--admin-token", s.AdminToken, "--reader-token", s.ReaderToken}
	return append(a, s.Extra...)
}

// URL is the site's base URL.
func (s *Site) URL() string { return "http://" + s.Listen }

// Start starts the site (once more, on the same data directory) and returns at once.
func (s *Site) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.starts++
	s.logPath = filepath.Join(s.LogDir, fmt.Sprintf("site-%d.log", s.starts))
	logf, err := os.Create(s.logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.Bin, s.Args()...)
	cmd.Dir = s.Cwd
	cmd.Env = append(os.Environ(), "CHDB_LIB_PATH="+s.ChdbLib)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive this program
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("cannot start %s: %w", s.Bin, err)
	}
	s.cmd, s.exited, s.exitErr = cmd, make(chan struct{}), nil
	s.expected.Store(false)
	s.pid.Store(int64(cmd.Process.Pid))
	exited := s.exited
	go func() {
		err := cmd.Wait()
		logf.Close()
		s.mu.Lock()
		s.exitErr = err
		if !s.expected.Load() {
			s.crashes = append(s.crashes, fmt.Sprintf("%s: pid %d exited unexpectedly (%v); log %s ends: %s",
				time.Now().Format(time.TimeOnly), cmd.Process.Pid, err, filepath.Base(s.logPath), tail(s.logPath, 1200)))
		}
		s.mu.Unlock()
		s.pid.Store(0)
		close(exited)
	}()
	return nil
}

// tail returns the last n bytes of a file, on one line.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, _ := f.Stat()
	off := max(st.Size()-n, 0)
	b := make([]byte, st.Size()-off)
	_, _ = f.ReadAt(b, off)
	return strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", " ⏎ ")
}

// PID returns the running site's PID, 0 when none runs.
func (s *Site) PID() int { return int(s.pid.Load()) }

// Alive reports whether the site process is running.
func (s *Site) Alive() bool {
	s.mu.Lock()
	ch := s.exited
	s.mu.Unlock()
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return false
	default:
		return true
	}
}

// Crashes returns the unexpected exits so far.
func (s *Site) Crashes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.crashes...)
}

// LogPath is the current run's log file.
func (s *Site) LogPath() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logPath
}

// WaitHealthy polls /healthz until it answers 200 or timeout passes.
func (s *Site) WaitHealthy(timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	hc := &http.Client{Timeout: time.Second}
	for time.Since(start) < timeout {
		if !s.Alive() {
			return time.Since(start), errors.New("the site exited while starting: " + tail(s.LogPath(), 800))
		}
		res, err := hc.Get(s.URL() + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return time.Since(start), nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start), fmt.Errorf("/healthz did not answer 200 within %s", timeout)
}

// Kill9 kills the site with SIGKILL and waits for it to be gone.
func (s *Site) Kill9() error {
	s.mu.Lock()
	cmd, ch := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return errors.New("no site to kill")
	}
	s.expected.Store(true)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-ch
	return nil
}

// Term sends SIGTERM and waits up to limit for the exit; it returns how long the exit took
// and the exit error (nil: status 0). After limit the site is killed and ok is false.
func (s *Site) Term(limit time.Duration) (took time.Duration, exitErr error, ok bool) {
	s.mu.Lock()
	cmd, ch := s.cmd, s.exited
	s.mu.Unlock()
	s.expected.Store(true)
	start := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ch:
		s.mu.Lock()
		defer s.mu.Unlock()
		return time.Since(start), s.exitErr, true
	case <-time.After(limit):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-ch
		return time.Since(start), errors.New("did not exit: killed"), false
	}
}

// sampleRSS reads the site's RSS every 100 ms until ctx ends.
func (s *Site) sampleRSS(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if rss := bench.ProcStatus(s.PID(), "VmRSS"); rss > 0 {
			s.rss.Store(rss)
			for p := s.peak.Load(); rss > p && !s.peak.CompareAndSwap(p, rss); p = s.peak.Load() {
			}
			for p := s.allPeak.Load(); rss > p && !s.allPeak.CompareAndSwap(p, rss); p = s.allPeak.Load() {
			}
			for p := s.subPeak.Load(); rss > p && !s.subPeak.CompareAndSwap(p, rss); p = s.subPeak.Load() {
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RSS returns the last RSS sample (fresh when the site runs).
func (s *Site) RSS() int64 {
	if rss := bench.ProcStatus(s.PID(), "VmRSS"); rss > 0 {
		return rss
	}
	return s.rss.Load()
}

// hwm folds the kernel's peak RSS of the process (VmHWM, exact between samples) into the
// peaks, and resets it (clear_refs 5) when reset is set.
func (s *Site) hwm(reset bool) {
	pid := s.PID()
	if h := bench.ProcStatus(pid, "VmHWM"); h > 0 {
		for _, p := range []*atomic.Int64{&s.peak, &s.subPeak, &s.allPeak} {
			for v := p.Load(); h > v && !p.CompareAndSwap(v, h); v = p.Load() {
			}
		}
	}
	if reset && pid > 0 {
		_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
	}
}

// MarkPeak starts a new peak window at the current RSS.
func (s *Site) MarkPeak() int64 {
	s.hwm(true)
	rss := s.RSS()
	s.peak.Store(rss)
	s.subPeak.Store(rss)
	return rss
}

// Peak returns the greatest RSS since MarkPeak.
func (s *Site) Peak() int64 { s.hwm(false); return s.peak.Load() }

// MarkPeakKeep starts a new sub-window (SubPeak) without losing MarkPeak's.
func (s *Site) MarkPeakKeep() int64 {
	s.hwm(true)
	rss := s.RSS()
	s.subPeak.Store(rss)
	return rss
}

// SubPeak returns the greatest RSS since MarkPeakKeep.
func (s *Site) SubPeak() int64 { s.hwm(false); return s.subPeak.Load() }
