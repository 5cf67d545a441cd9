package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/dlb-lb/dlb/admin"
	"github.com/dlb-lb/dlb/certs"
	"github.com/urfave/cli/v2"
)

// Exit codes of dlb status.
const (
	statusOK       = 0
	statusNotReady = 1 // a service has no ready replica
	statusNoAnswer = 2 // the admin API could not be read
)

// statusCommand returns "dlb status": a running dlb's pools and certificates,
// read from its admin API (package admin does the reading and printing).
func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show every service and replica of a running dlb, like docker ps",
		Description: "Reads a running dlb's admin API and prints one line per replica.\n" +
			"Exits 0 when every service has a ready replica, 1 when one has none (and says which),\n" +
			"2 when the admin API cannot be read.",
		Flags: append([]cli.Flag{
			&cli.DurationFlag{Name: "timeout", Value: 5 * time.Second, Usage: "how long to wait for the admin API"},
		}, adminClientFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return cli.Exit(fmt.Sprintf("unexpected argument %q: dlb status takes flags only (see dlb status --help)", c.Args().First()), statusNoAnswer)
			}
			token, err := adminToken(c.String("admin-token"), c.String("admin-token-file"))
			if err != nil {
				return cli.Exit(err.Error(), statusNoAnswer)
			}
			pools, err := admin.FetchPools(c.Context, c.String("admin-url"), token, c.Duration("timeout"))
			if err != nil {
				return cli.Exit(err.Error(), statusNoAnswer)
			}
			admin.WriteStatus(c.App.Writer, pools)
			var hosts []certs.HostStatus
			if ok, err := admin.Fetch(c.Context, c.String("admin-url"), token, "/api/certificates", c.Duration("timeout"), &hosts); err != nil {
				return cli.Exit(err.Error(), statusNoAnswer)
			} else if ok && len(hosts) > 0 {
				fmt.Fprintln(c.App.Writer)
				admin.WriteCertificates(c.App.Writer, hosts)
			}
			if msg := admin.NotReady(pools); msg != "" {
				return cli.Exit(msg, statusNotReady)
			}
			return nil
		},
	}
}

// adminClientFlags are the flags of the commands that read a running dlb's
// admin API: its address and its token.
func adminClientFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "admin-url", Value: admin.DefaultURL, EnvVars: envs("ADMIN_URL"), Usage: "address of dlb's admin API (dlb's --admin)"},
		&cli.StringFlag{Name: "admin-token", EnvVars: envs("ADMIN_TOKEN"), Usage: "the admin token of dlb's --admin-token"},
		&cli.StringFlag{Name: "admin-token-file", EnvVars: envs("ADMIN_TOKEN_FILE"), Usage: "file holding --admin-token"},
	}
}

// adminToken reads --admin-token or --admin-token-file (not both).
func adminToken(tok, file string) (string, error) {
	if file == "" {
		if tok != "" && strings.TrimSpace(tok) == "" {
			return "", badFlag("admin-token", "(blank)", "is blank: give a token, or leave it unset")
		}
		return strings.TrimSpace(tok), nil
	}
	if tok != "" {
		return "", cli.Exit("--admin-token and --admin-token-file both set: give one of them", 2)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", badFlag("admin-token-file", file, "cannot read it; give a readable file (mount the secret into dlb's container)")
	}
	tok = strings.TrimSpace(string(b))
	if tok == "" {
		return "", badFlag("admin-token-file", file, "is empty: put the token in it")
	}
	return tok, nil
}
