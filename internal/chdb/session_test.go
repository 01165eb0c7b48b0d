package chdb

import (
	"testing"
)

func TestSessionSmoke(t *testing.T) {
	requireLibrary(t)
	s, err := Open("", testDataDir) // the process's one session (see TestMain)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Query([]byte("SELECT 1+1 AS x"), "CSV")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%q", out)
	if _, err := s.Query([]byte("CREATE DATABASE IF NOT EXISTS d1"), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Query([]byte("CREATE TABLE IF NOT EXISTS d1.t (a UInt32, s String) ENGINE=MergeTree ORDER BY a"), ""); err != nil {
		t.Fatal(err)
	}
	q := []byte("INSERT INTO d1.t (a, s) FORMAT RowBinary\n")
	q = append(q, 7, 0, 0, 0, 3, 'a', 0, 'c')
	q = append(q, 8, 0, 0, 0, 1, '\n')
	if _, err := s.Query(q, ""); err != nil {
		t.Fatal(err)
	}
	out, err = s.Query([]byte("SELECT a, hex(s) FROM d1.t ORDER BY a"), "JSONCompact")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", out)
	_, err = s.Query([]byte("SELEC bad"), "CSV")
	t.Logf("err: %v", err)
	_, err = s.Query([]byte("INSERT INTO d1.t SELECT 1, 'x' SETTINGS readonly=1"), "CSV")
	t.Logf("readonly insert err: %v", err)
	_, err = s.Query([]byte("SELECT 1; DROP TABLE d1.t"), "CSV")
	t.Logf("multi err: %v", err)
}
