package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/dlb-lb/dlb/discovery"
	"github.com/dlb-lb/dlb/lint"
	"github.com/dlb-lb/dlb/rollout"
	"github.com/urfave/cli/v2"
)

// Exit codes of dlb rollout.
const (
	rolloutFailed  = 1 // a new replica failed, or the rollout was interrupted: the service is put back
	rolloutRefused = 2 // nothing was changed: bad flags, or a service that cannot be rolled out
)

// rolloutCommand returns "dlb rollout": a Compose service's replicas
// replaced by new ones with no stall, one safe step at a time (package
// rollout does the work).
func rolloutCommand() *cli.Command {
	return &cli.Command{
		Name:      "rollout",
		Usage:     "replace a Compose service's replicas with its new image or configuration, with no stall",
		ArgsUsage: "SERVICE...",
		Description: "Run on the host, with Compose's files, project and env file as for up. For each SERVICE:\n" +
			"starts as many new replicas as it runs beside the old ones (compose up --no-recreate --scale),\n" +
			"waits until dlb (--admin-url) reports every new one ready, then stops the old ones (dlb drains\n" +
			"them; each gets its stop_grace_period) and removes them. A new replica that exits, turns\n" +
			"unhealthy or is not ready within --timeout, or Ctrl-C, removes the new ones: the old keep serving.\n" +
			"Exit status: 0 done, 1 the rollout failed (the service is put back), 2 nothing was changed.",
		Flags: append([]cli.Flag{
			&cli.StringSliceFlag{Name: "file", Aliases: []string{"f"}, Usage: "Compose file, as for compose -f (repeat for several)"},
			&cli.StringFlag{Name: "project-name", Aliases: []string{"p"}, Usage: "Compose project name, as for compose -p"},
			&cli.StringFlag{Name: "env-file", Usage: "Compose env file, as for compose --env-file"},
			&cli.DurationFlag{Name: "timeout", Value: rollout.DefaultTimeout, Usage: "how long new replicas may take to be ready before the rollout is undone"},
			&cli.IntFlag{Name: "batch", Usage: "replace this many replicas at a time (0: all at once), for services too big to double"},
			&cli.BoolFlag{Name: "dry-run", Usage: "say what would be done, and change nothing"},
		}, adminClientFlags()...),
		Action: runRollout,
	}
}

// runRollout is the Action of rolloutCommand.
func runRollout(c *cli.Context) error {
	services := c.Args().Slice()
	if len(services) == 0 {
		return cli.Exit("dlb rollout: name the service to roll out: dlb rollout [-f FILE]... [-p PROJECT] SERVICE...", rolloutRefused)
	}
	for _, s := range services {
		if strings.HasPrefix(s, "-") {
			return cli.Exit(fmt.Sprintf("dlb rollout: %q after the services: put the options before SERVICE", s), rolloutRefused)
		}
	}
	if c.Int("batch") < 0 {
		return badFlag("batch", fmt.Sprint(c.Int("batch")), "must be a number of replicas (0: all at once)")
	}
	if c.Duration("timeout") <= 0 {
		return badFlag("timeout", c.Duration("timeout").String(), "must be a positive duration, e.g. 2m")
	}
	token, err := adminToken(c.String("admin-token"), c.String("admin-token-file"))
	if err != nil {
		return err
	}
	files := c.StringSlice("file")
	if err := checkSideBySide(composeFiles(files), services); err != nil {
		return err
	}

	// Ctrl-C or SIGTERM puts the service back; a second one stops at once.
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop)

	command, err := rollout.FindCompose(ctx)
	if err != nil {
		return cli.Exit("dlb rollout: "+err.Error(), rolloutRefused)
	}
	docker, err := discovery.NewClient("")
	if err != nil {
		return cli.Exit("dlb rollout: "+err.Error(), rolloutRefused)
	}
	defer docker.Close()
	var global []string
	for _, f := range files {
		global = append(global, "-f", f)
	}
	if p := c.String("project-name"); p != "" {
		global = append(global, "-p", p)
	}
	if f := c.String("env-file"); f != "" {
		global = append(global, "--env-file", f)
	}
	url := c.String("admin-url")
	adm := rollout.HTTPAdmin{URL: url, Token: token}
	w := c.App.Writer
	for _, service := range services {
		eng := &rollout.ComposeEngine{Command: command, Global: global, Service: service, Docker: docker}
		containers, err := eng.Containers(ctx)
		if err != nil {
			return cli.Exit("dlb rollout: "+err.Error(), rolloutRefused)
		}
		plan, err := rollout.NewPlan(service, containers, c.Int("batch"))
		if err != nil {
			return cli.Exit("dlb rollout: "+err.Error(), rolloutRefused)
		}
		gate, self, err := rollout.ChooseGate(ctx, adm, url, service, plan.Old)
		if err != nil {
			return cli.Exit("dlb rollout: "+err.Error(), rolloutRefused)
		}
		how := "all at once"
		if self {
			// A new dlb takes over the listening sockets of the one it
			// replaces: one at a time.
			plan, _ = rollout.NewPlan(service, containers, 1)
			how = "one at a time (dlb's own service)"
		} else if len(plan.Batches) > 1 {
			how = fmt.Sprintf("%d at a time", len(plan.Batches[0]))
		}
		project, _ := eng.Project(ctx)
		fmt.Fprintf(w, "rollout of %s (project %s): %d running replicas, replaced %s\n", service, project, len(plan.Old), how)
		runner := &rollout.Runner{Engine: eng, Gate: gate, Out: w, Timeout: c.Duration("timeout")}
		if c.Bool("dry-run") {
			for i, s := range plan.Steps() {
				fmt.Fprintf(w, "[%d/%d] would %s\n", i+1, len(plan.Steps()), plan.Describe(s, eng.ScaleCommand(s.Scale), nil, runner.Timeout))
			}
			fmt.Fprintln(w, "dry run: nothing was changed")
			continue
		}
		start := time.Now()
		if err := runner.Run(ctx, plan); err != nil {
			return cli.Exit(err.Error(), rolloutFailed) // "rollout of SERVICE failed: ..."
		}
		fmt.Fprintf(w, "rollout of %s done in %s: %d new replicas serving\n", service, time.Since(start).Round(100*time.Millisecond), len(plan.Old))
	}
	return nil
}

// composeFiles returns the Compose files a command reads: files (-f) when
// given, else COMPOSE_FILE's, else the file Compose finds in the current
// directory and its override file.
func composeFiles(files []string) []string {
	if len(files) > 0 {
		return files
	}
	if env := os.Getenv("COMPOSE_FILE"); env != "" {
		sep := os.Getenv("COMPOSE_PATH_SEPARATOR")
		if sep == "" {
			sep = string(os.PathListSeparator)
		}
		return strings.Split(env, sep)
	}
	main := lint.FindComposeFile()
	out := []string{main}
	ext := filepath.Ext(main)
	for _, e := range []string{".yml", ".yaml"} {
		override := strings.TrimSuffix(main, ext) + ".override" + e
		if _, err := os.Stat(override); err == nil {
			out = append(out, override)
			break
		}
	}
	return out
}

// checkSideBySide refuses services that cannot run two replicas side by
// side (container_name, host ports), naming the line and the fix; files
// that cannot be read are left to Compose to complain about.
func checkSideBySide(files, services []string) error {
	var lines []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, s := range services {
			findings, err := lint.SideBySide(f, data, s)
			if err != nil {
				return cli.Exit("dlb rollout: "+err.Error(), rolloutRefused)
			}
			for _, fd := range findings {
				lines = append(lines, fd.String())
			}
		}
	}
	if len(lines) > 0 {
		return cli.Exit("dlb rollout: the new replicas cannot run beside the old ones:\n"+strings.Join(lines, "\n"), rolloutRefused)
	}
	return nil
}
