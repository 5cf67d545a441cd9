package main

import (
	"fmt"
	"regexp"
	"slices"

	"github.com/urfave/cli/v2"
)

// The errors of Go's flag package and of urfave/cli for a value that does
// not parse, an unknown flag and a flag given no value.
var (
	reBadValue = regexp.MustCompile(`invalid (?:boolean )?value "(.*)" for (?:flag )?-+([\w-]+)`)
	reBadEnv   = regexp.MustCompile(`could not parse "(.*)" as \w+ value from (?:environment variable|env var) "(\w+)" for flag ([\w-]+)`)
	reUnknown  = regexp.MustCompile(`flag provided but not defined: -+([\w-]+)`)
	reNoValue  = regexp.MustCompile(`flag needs an argument: -+([\w-]+)`)
)

// usageError answers a flag that cannot be parsed the way parseConfig
// answers a bad value: one line naming the flag (with two dashes) and what
// it takes, exit status 2; no page of help. It is every command's
// OnUsageError.
func usageError(c *cli.Context, err error, _ bool) error {
	msg := err.Error()
	if m := reBadValue.FindStringSubmatch(msg); m != nil {
		return badFlag(m[2], m[1], flagWants(c, m[2]))
	}
	if m := reBadEnv.FindStringSubmatch(msg); m != nil {
		return cli.Exit(fmt.Sprintf("%s=%q (--%s): %s", m[2], m[1], m[3], flagWants(c, m[3])), 2)
	}
	if m := reUnknown.FindStringSubmatch(msg); m != nil {
		dashes := "--"
		if len(m[1]) == 1 {
			dashes = "-"
		}
		return cli.Exit(fmt.Sprintf("unknown flag %s%s (see %s --help)", dashes, m[1], c.Command.HelpName), 2)
	}
	if m := reNoValue.FindStringSubmatch(msg); m != nil {
		return cli.Exit(fmt.Sprintf("--%s needs a value: %s", m[1], flagWants(c, m[1])), 2)
	}
	return cli.Exit(msg+" (see dlb --help)", 2)
}

// flagWants says what values the flag named name takes, from its type.
func flagWants(c *cli.Context, name string) string {
	flags := c.App.Flags
	if c.Command != nil && len(c.Command.Flags) > 0 {
		flags = append(slices.Clip(c.Command.Flags), flags...)
	}
	for _, f := range flags {
		if !slices.Contains(f.Names(), name) {
			continue
		}
		switch f.(type) {
		case *cli.IntFlag, *cli.Int64Flag, *cli.UintFlag:
			return "must be a whole number"
		case *cli.DurationFlag:
			return "must be a duration with its unit, e.g. 5s, 250ms or 1m30s"
		case *cli.BoolFlag:
			return "must be true or false"
		case *cli.Float64Flag:
			return "must be a number"
		}
		return "takes a value"
	}
	return "see dlb --help"
}
