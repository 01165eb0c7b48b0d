package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingActor runs until its context ends, taking its time to stop, and records when it
// stopped.
type recordingActor struct {
	name    string
	mu      *sync.Mutex
	stopped *[]string
	fail    error // returned at once instead of running
}

func (a recordingActor) Name() string { return a.name }

func (a recordingActor) Run(ctx context.Context) error {
	if a.fail != nil {
		return a.fail
	}
	<-ctx.Done()
	time.Sleep(10 * time.Millisecond) // an actor that takes a moment to stop
	a.mu.Lock()
	*a.stopped = append(*a.stopped, a.name)
	a.mu.Unlock()
	return nil
}

// A node runs its sites' actors and stops each site's in reverse order of start, each after
// the previous one returned, logging each stop and the end of the whole stop.
func TestNodeStopsActorsInReverseOrder(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	var mu sync.Mutex
	var stopped []string
	n := newNode(slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil)))
	if err := n.listen("127.0.0.1:0", "", ""); err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{"A", "B"} {
		s := &site{cfg: siteConfig{Code: code}}
		for _, name := range []string{"follower", "projector", "replicator"} {
			s.addActor(recordingActor{name: code + " " + name, mu: &mu, stopped: &stopped})
		}
		n.addSite(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.run(ctx) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the node did not stop")
	}
	want := []string{"A replicator", "A projector", "A follower", "B replicator", "B projector", "B follower"}
	if !reflect.DeepEqual(stopped, want) {
		t.Errorf("stopped %v, want %v", stopped, want)
	}
	out := logs.String()
	for _, line := range []string{`msg="stopped http"`, `msg="stopped A projector" site=A`, `msg="stopped statepipe"`} {
		if !strings.Contains(out, line) {
			t.Errorf("log lacks %s:\n%s", line, out)
		}
	}
	if strings.Index(out, `msg="stopped statepipe"`) < strings.LastIndex(out, `msg="stopped `) {
		t.Errorf("the last stop line is not the whole stop's:\n%s", out)
	}
}

// An actor that fails stops the node with its error.
func TestNodeStopsWhenAnActorFails(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var stopped []string
	n := newNode(quietLogger())
	if err := n.listen("127.0.0.1:0", "", ""); err != nil {
		t.Fatal(err)
	}
	broken := errors.New("store gone for good")
	s := &site{cfg: siteConfig{Code: "A"}}
	s.addActor(recordingActor{name: "follower", mu: &mu, stopped: &stopped})
	s.addActor(recordingActor{name: "projector", fail: broken})
	n.addSite(s)
	if err := n.run(context.Background()); !errors.Is(err, broken) {
		t.Errorf("run returned %v, want the actor's error", err)
	}
	if !reflect.DeepEqual(stopped, []string{"follower"}) {
		t.Errorf("stopped %v, want the other actor stopped", stopped)
	}
}

// syncWriter serialises writes of concurrent loggers.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
