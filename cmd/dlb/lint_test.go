package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dlb-lb/dlb/lint"
	"github.com/urfave/cli/v2"
)

// lintDir holds package lint's fixtures: one Compose file per finding, and clean ones.
const lintDir = "../../lint/testdata/lint"

// runApp runs "dlb args..." through a cli.App holding lintCommand and returns the
// exit code, stdout and the exit message.
func runApp(t *testing.T, args ...string) (code int, stdout, msg string) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := &cli.App{
		Name:           "dlb",
		Commands:       []*cli.Command{lintCommand()},
		Writer:         &out,
		ErrWriter:      &errOut,
		ExitErrHandler: func(*cli.Context, error) {}, // the test reads the error; no os.Exit
	}
	err := app.Run(append([]string{"dlb"}, args...))
	var ec cli.ExitCoder
	switch {
	case err == nil:
	case errors.As(err, &ec):
		code, msg = ec.ExitCode(), err.Error()
	default:
		t.Fatalf("dlb %q: got error %v without an exit code, want a cli.ExitCoder", args, err)
	}
	return code, out.String(), msg
}

func TestLintCommand(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		code    int
		stdout  string // in stdout
		message string // in the exit message
	}{
		{"clean", []string{"lint", lintDir + "/clean.yaml"}, 0, "ok: 2 services checked\n", ""},
		{"findings", []string{"lint", lintDir + "/classic.yaml"}, 1, "classic.yaml:14: service \"app\": ports: publishes host port 8080:80", "1 finding(s)"},
		{"unparsable", []string{"lint", lintDir + "/invalid.yaml"}, 2, "", "invalid.yaml:6: cannot parse YAML"},
		{"missing file", []string{"lint", lintDir + "/nope.yaml"}, 2, "", "no such file or directory; pass the Compose file's path"},
		{"too many args", []string{"lint", "a.yaml", "b.yaml"}, 2, "", "usage: dlb lint [FILE]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, msg := runApp(t, tt.args...)
			if code != tt.code || !strings.Contains(stdout, tt.stdout) || !strings.Contains(msg, tt.message) {
				t.Errorf("dlb %q:\n got  code %d, stdout %q, message %q\n want code %d, stdout with %q, message with %q",
					tt.args, code, stdout, msg, tt.code, tt.stdout, tt.message)
			}
		})
	}
}

// TestLintCommandDefaultFile runs "dlb lint" with no FILE, in a directory holding
// docker-compose.yaml, then only compose.yaml, then neither.
func TestLintCommandDefaultFile(t *testing.T) {
	clean, err := os.ReadFile(filepath.Join(lintDir, "clean.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Chdir(dir)

	if code, _, msg := runApp(t, "lint"); code != 2 || !strings.Contains(msg, "docker-compose.yaml") {
		t.Errorf("no file: got code %d, message %q; want 2 naming docker-compose.yaml", code, msg)
	}
	if err := os.WriteFile("compose.yaml", clean, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, msg := runApp(t, "lint"); code != 0 || out != "ok: 2 services checked\n" {
		t.Errorf("compose.yaml only: got code %d, stdout %q, message %q; want 0 and ok", code, out, msg)
	}
	if err := os.WriteFile(lint.DefaultComposeFile, []byte("services:\n  a:\n    image: a\n    labels: [dlb.enable=true]\n    container_name: a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runApp(t, "lint"); code != 1 || !strings.HasPrefix(out, "docker-compose.yaml:5: ") {
		t.Errorf("both files: got code %d, stdout %q; want 1 and a finding in docker-compose.yaml", code, out)
	}
}
