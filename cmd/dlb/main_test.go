package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// runDLB runs dlb with args and returns its exit code, stdout and stderr.
// None of the cases may start the server: run must return at once.
func runDLB(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- run(append([]string{"dlb"}, args...), &out, &errOut) }()
	select {
	case code = <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("dlb %q: still running after 10s, want it to return (did it start the server?)", args)
	}
	return code, out.String(), errOut.String()
}

func TestRunExitCodes(t *testing.T) {
	// guard is a bad flag checked after the others: if the check under test
	// let a value through, parseConfig still stops before serving (and the
	// test fails on the message, instead of hanging).
	guard := []string{"--log-format", "guard"}
	tests := []struct {
		name       string
		args       []string
		want       int
		wantStderr []string
		wantStdout []string
	}{
		{
			name:       "bad --log-level",
			args:       append([]string{"--log-level", "loud"}, guard...),
			want:       2,
			wantStderr: []string{"--log-level", `"loud"`, "debug, info, warn or error"},
		},
		{
			name:       "--log-level trace is not offered",
			args:       append([]string{"--log-level", "trace"}, guard...),
			want:       2,
			wantStderr: []string{"--log-level", `"trace"`, "debug, info, warn or error"},
		},
		{
			name:       "--log-level empty",
			args:       append([]string{"--log-level="}, guard...),
			want:       2,
			wantStderr: []string{"--log-level", `""`},
		},
		{
			name:       "--handover-socket in a directory that does not exist",
			args:       append([]string{"--handover-socket", "/nonexistent-dlb-volume/handover.sock"}, guard...),
			want:       2,
			wantStderr: []string{"--handover-socket", "/nonexistent-dlb-volume does not exist", "mount there a volume"},
		},
		{
			name:       "--handover-socket naming a directory",
			args:       append([]string{"--handover-socket", os.TempDir()}, guard...),
			want:       2,
			wantStderr: []string{"--handover-socket", "is a directory", "path of a socket file"},
		},
		{
			name:       "bad --log-format",
			args:       []string{"--log-format", "xml", "--listen", "127.0.0.1:0", "--admin="},
			want:       2,
			wantStderr: []string{"--log-format", `"xml"`, "console or json"},
		},
		{
			name:       "--data-path std, removed",
			args:       append([]string{"--data-path", "std"}, guard...),
			want:       2,
			wantStderr: []string{`--data-path "std": removed: dlb's own HTTP/1.1 engine serves every plain request`, "drop the flag"},
		},
		{
			name:       "--upstream-transport std, removed",
			args:       append([]string{"--upstream-transport", "std"}, guard...),
			want:       2,
			wantStderr: []string{`--upstream-transport "std": removed: dlb's own HTTP/1.1 transport`, "drop the flag"},
		},
		{
			// fast is what dlb does: accepted, so the guard answers.
			name:       "--data-path fast and --upstream-transport fast, retired",
			args:       append([]string{"--data-path", "fast", "--upstream-transport", "fast"}, guard...),
			want:       2,
			wantStderr: []string{"--log-format", `"guard"`},
		},
		{
			name:       "bad --memory-limit",
			args:       append([]string{"--memory-limit", "lots"}, guard...),
			want:       2,
			wantStderr: []string{"--memory-limit", `"lots"`, "256MiB"},
		},
		{
			name:       "bad --gc-percent",
			args:       append([]string{"--gc-percent", "-5"}, guard...),
			want:       2,
			wantStderr: []string{"--gc-percent", `"-5"`, "-1 (off) or more"},
		},
		{
			name:       "negative --park-idle-after",
			args:       append([]string{"--park-idle-after", "-1s"}, guard...),
			want:       2,
			wantStderr: []string{"--park-idle-after", `"-1s"`, "must not be negative"},
		},
		{
			name:       "--listen nonsense",
			args:       append([]string{"--listen", "nonsense"}, guard...),
			want:       2,
			wantStderr: []string{"--listen", `"nonsense"`, "host:port"},
		},
		{
			name:       "--listen port out of range",
			args:       append([]string{"--listen", ":99999"}, guard...),
			want:       2,
			wantStderr: []string{"--listen", `":99999"`, "0-65535"},
		},
		{
			name:       "--admin nonsense",
			args:       append([]string{"--admin", "8080"}, guard...),
			want:       2,
			wantStderr: []string{"--admin", `"8080"`, "host:port"},
		},
		{
			name:       "--retries too many",
			args:       append([]string{"--retries", "11"}, guard...),
			want:       2,
			wantStderr: []string{"--retries", `"11"`, "0 to 10"},
		},
		{
			name:       "--retries negative",
			args:       append([]string{"--retries", "-1"}, guard...),
			want:       2,
			wantStderr: []string{"--retries", "0 to 10"},
		},
		{
			name:       "--queue-timeout negative",
			args:       append([]string{"--queue-timeout", "-1s"}, guard...),
			want:       2,
			wantStderr: []string{"--queue-timeout", "negative"},
		},
		{
			name:       "--max-inflight not a limit",
			args:       append([]string{"--max-inflight", "lots"}, guard...),
			want:       2,
			wantStderr: []string{"--max-inflight", `"lots"`, "give a whole number from 0 (no limit) to 100000, or auto"},
		},
		{
			name:       "--shutdown-timeout negative",
			args:       append([]string{"--shutdown-timeout", "-1s"}, guard...),
			want:       2,
			wantStderr: []string{"--shutdown-timeout", "negative"},
		},
		{
			name:       "--max-header-bytes too small",
			args:       append([]string{"--max-header-bytes", "100"}, guard...),
			want:       2,
			wantStderr: []string{"--max-header-bytes", "1024"},
		},
		{
			name:       "--docker-host without a scheme",
			args:       append([]string{"--docker-host", "/var/run/docker.sock"}, guard...),
			want:       2,
			wantStderr: []string{"--docker-host", "unix://"},
		},
		{
			name:       "an argument",
			args:       append([]string{"serve"}, guard...),
			want:       2,
			wantStderr: []string{"unexpected argument", `"serve"`},
		},
		{
			name:       "--retries not a number: one line, no help",
			args:       []string{"--retries", "abc"},
			want:       2,
			wantStderr: []string{`dlb: --retries "abc": must be a whole number` + "\n"},
		},
		{
			name:       "--queue-timeout without a unit",
			args:       []string{"--queue-timeout", "5"},
			want:       2,
			wantStderr: []string{`--queue-timeout "5"`, "5s"},
		},
		{
			name:       "boolean flag with a bad value",
			args:       []string{"--exposed-by-default=maybe"},
			want:       2,
			wantStderr: []string{`--exposed-by-default "maybe"`, "true or false"},
		},
		{
			name:       "unknown flag",
			args:       []string{"--nope"},
			want:       2,
			wantStderr: []string{"dlb: unknown flag --nope (see dlb --help)\n"},
		},
		{
			name:       "unknown flag of a command",
			args:       []string{"lint", "--nope"},
			want:       2,
			wantStderr: []string{"dlb: unknown flag --nope (see dlb lint --help)\n"},
		},
		{
			name:       "a flag with no value",
			args:       []string{"--retries"},
			want:       2,
			wantStderr: []string{"--retries needs a value"},
		},
		{
			name:       "version",
			args:       []string{"version"},
			want:       0,
			wantStdout: []string{"dlb " + version},
		},
		{
			name:       "help",
			args:       []string{"--help"},
			want:       0,
			wantStdout: []string{"--listen", "--network", "--log-level"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runDLB(t, tt.args...)
			if code != tt.want {
				t.Errorf("dlb %q: got exit code %d, want %d (stderr %q)", tt.args, code, tt.want, stderr)
			}
			for _, s := range tt.wantStderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("dlb %q: got stderr %q, want it to contain %q", tt.args, stderr, s)
				}
			}
			if tt.want == 2 && strings.Count(stderr, "\n") != 1 {
				t.Errorf("dlb %q: got stderr %q, want one line", tt.args, stderr)
			}
			for _, s := range tt.wantStdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("dlb %q: got stdout %q, want it to contain %q", tt.args, stdout, s)
				}
			}
		})
	}
}

// A bad value in a DLB_* variable is answered like a bad flag: one line
// naming the variable and its flag, exit status 2.
func TestRunBadEnvValue(t *testing.T) {
	t.Setenv("DLB_RETRIES", "abc")
	code, _, stderr := runDLB(t)
	if want := "dlb: DLB_RETRIES=\"abc\" (--retries): must be a whole number\n"; code != 2 || stderr != want {
		t.Errorf("DLB_RETRIES=abc dlb: got exit code %d, stderr %q; want 2, %q", code, stderr, want)
	}
}

// DLB_DATA_PATH=std names a data path dlb no longer has: one line saying
// so and why, exit status 2.
func TestRunRetiredDataPathEnv(t *testing.T) {
	t.Setenv("DLB_DATA_PATH", "std")
	code, _, stderr := runDLB(t)
	want := "dlb: DLB_DATA_PATH=\"std\" (--data-path): removed: dlb's own HTTP/1.1 engine serves every plain request"
	if code != 2 || !strings.HasPrefix(stderr, want) || strings.Count(stderr, "\n") != 1 {
		t.Errorf("DLB_DATA_PATH=std dlb: got exit code %d, stderr %q; want 2 and one line starting %q", code, stderr, want)
	}
}

// DLB_DATA_PATH=fast is what dlb does: it starts, having warned that the
// variable is ignored (before it logs that it starts).
func TestRunRetiredDataPathFast(t *testing.T) {
	requireDocker(t)
	t.Setenv("DLB_DATA_PATH", "fast")
	d := launchDLB(t)
	want := `"level":"warn","time":`
	if logs := d.logs(); strings.Count(logs, `DLB_DATA_PATH=\"fast\" (--data-path): retired and ignored`) != 1 || !strings.Contains(logs, want) {
		t.Errorf("DLB_DATA_PATH=fast dlb: got log\n%s\nwant one warning that DLB_DATA_PATH is retired and ignored", logs)
	}
}
