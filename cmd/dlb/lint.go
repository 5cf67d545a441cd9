package main

import (
	"fmt"
	"os"

	"github.com/dlb-lb/dlb/lint"
	"github.com/urfave/cli/v2"
)

// lintCommand returns the "dlb lint [FILE]" subcommand. It exits 0 when the file is
// clean, 1 when it has findings (printed one per line on stdout) and 2 when the
// file cannot be read or parsed.
func lintCommand() *cli.Command {
	return &cli.Command{
		Name:      "lint",
		Usage:     "check a Compose file for what breaks scaling behind dlb",
		ArgsUsage: "[FILE]",
		Description: "Checks FILE (default " + lint.DefaultComposeFile + ", else compose.yaml, compose.yml,\n" +
			"docker-compose.yml) for dlb-enabled services that publish host ports, set\n" +
			"container_name or expose several ports without a dlb.port label, for a dlb\n" +
			"service without the Docker socket, for apps that share no network with dlb and\n" +
			"for a --network/DLB_NETWORK naming no network of the file.\n" +
			"Exit status: 0 clean, 1 findings, 2 the file cannot be read or parsed.",
		Action: runLint,
	}
}

// runLint is the Action of lintCommand.
func runLint(c *cli.Context) error {
	if c.NArg() > 1 {
		return cli.Exit(fmt.Sprintf("dlb lint: too many arguments %q; usage: dlb lint [FILE]", c.Args().Slice()), 2)
	}
	name := c.Args().First()
	if name == "" {
		name = lint.FindComposeFile()
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return cli.Exit(fmt.Sprintf("dlb lint: %v; pass the Compose file's path: dlb lint FILE", err), 2)
	}
	findings, services, err := lint.File(name, data)
	if err != nil {
		return cli.Exit("dlb lint: "+err.Error(), 2)
	}
	w := c.App.Writer
	for _, f := range findings {
		fmt.Fprintln(w, f)
	}
	if len(findings) > 0 {
		return cli.Exit(fmt.Sprintf("dlb lint: %d finding(s) in %s; apply the fixes above and run dlb lint again", len(findings), name), 1)
	}
	fmt.Fprintf(w, "ok: %d services checked\n", services)
	return nil
}
