// Package lint is dlb lint's check of a Compose file for what breaks scaling
// behind dlb: published host ports, container_name, several exposed ports
// without dlb.port, a dlb without the Docker socket, apps that share no
// network with dlb. It reads the file only (no Docker engine), so it runs
// anywhere, e.g. in CI; labels are parsed by package discovery, as the
// watcher parses them.
package lint

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/dlb-lb/dlb/discovery"
	"gopkg.in/yaml.v3"
)

// DefaultComposeFile is the file dlb lint checks when given no FILE argument.
const DefaultComposeFile = "docker-compose.yaml"

// composeFallbacks are the other names Compose looks for; dlb lint tries them, in
// this order, when no FILE is given and DefaultComposeFile does not exist.
var composeFallbacks = []string{"compose.yaml", "compose.yml", "docker-compose.yml"}

// Finding is one problem found in a Compose file: where it is, what is wrong
// and how to fix it.
type Finding struct {
	File    string // the Compose file's name as given
	Line    int    // 1-based line of the offending key
	Service string // the Compose service the finding is about
	Key     string // the offending key, e.g. "ports"
	Message string // what is wrong and what it breaks
	Fix     string // what to change, as a full sentence
}

// String renders the finding on one line, as "file:line: service "x": key: message. fix".
func (f Finding) String() string {
	return fmt.Sprintf("%s:%d: service %q: %s: %s. %s", f.File, f.Line, f.Service, f.Key, f.Message, f.Fix)
}

// FindComposeFile returns DefaultComposeFile, or the first of composeFallbacks that
// exists when it does not.
func FindComposeFile() string {
	if _, err := os.Stat(DefaultComposeFile); errors.Is(err, fs.ErrNotExist) {
		for _, n := range composeFallbacks {
			if _, err := os.Stat(n); err == nil {
				return n
			}
		}
	}
	return DefaultComposeFile
}

// Compose checks the Compose file data (named name in messages) and returns its
// findings, sorted by line. The error, for a file that is no valid YAML or no
// Compose file, starts with "name:line:".
func Compose(name string, data []byte) ([]Finding, error) {
	findings, _, err := File(name, data)
	return findings, err
}

// composeService is what lint needs to know of one service of the file.
type composeService struct {
	name    string
	line    int        // line of the service's key under services:
	node    *yaml.Node // the service's mapping
	enabled bool       // labelled dlb.enable=true: an app dlb balances
	proxy   bool       // dlb itself (see isProxy)
	nets    []string   // networks it is on ("default" when it names none)
	netMode bool       // it sets network_mode:, so nets says nothing
}

// File is Compose that also returns how many services the file has.
func File(name string, data []byte) ([]Finding, int, error) {
	root, services, err := parse(name, data)
	if err != nil {
		return nil, 0, err
	}

	// The networks --network may name: the top-level keys and "default", each also
	// under the name Docker knows it by (its name: override, else <project>_<key>).
	netNames := map[string]string{}
	var netKeys []string
	for _, p := range pairs(lookupValue(root, "networks"), 0) {
		netKeys = append(netKeys, p[0].Value)
		if n := lookupValue(p[1], "name"); n != nil && n.Kind == yaml.ScalarNode && n.Value != "" {
			netNames[p[0].Value] = n.Value
		}
	}
	netKeys = append(netKeys, "default")

	l := &linter{file: name}
	var proxies []*composeService
	for _, s := range services {
		if s.proxy {
			proxies = append(proxies, s)
			l.checkSocket(s)
			l.checkNetworkFlag(s, netKeys, netNames)
		}
	}
	for _, s := range services {
		if s.enabled {
			l.checkSideBySide(s)
			l.checkExpose(s)
			l.checkSharedNetwork(s, proxies)
		}
	}
	sort.SliceStable(l.findings, func(i, j int) bool { return l.findings[i].Line < l.findings[j].Line })
	return l.findings, len(services), nil
}

// parse reads the Compose file data (named name in messages) into its top-level
// mapping and its services, in the file's order.
func parse(name string, data []byte) (*yaml.Node, []*composeService, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, yamlError(name, data, err)
	}
	root := deref(&doc, 0)
	if root == nil || root.Kind != yaml.MappingNode {
		line := 1
		if root != nil && root.Line > 0 {
			line = root.Line
		}
		return nil, nil, fmt.Errorf("%s:%d: not a Compose file: the top level must be a mapping with a services: key", name, line)
	}
	sk, svcs := lookup(root, "services")
	if sk == nil || svcs == nil || svcs.Kind != yaml.MappingNode {
		line := root.Line
		if sk != nil {
			line = sk.Line
		}
		return nil, nil, fmt.Errorf("%s:%d: not a Compose file: services: must be a mapping of service names to services", name, line)
	}
	var services []*composeService
	for _, p := range pairs(svcs, 0) {
		if p[1] == nil || p[1].Kind != yaml.MappingNode {
			return nil, nil, fmt.Errorf("%s:%d: service %q is not a mapping; give it at least an image: or build:", name, p[0].Line, p[0].Value)
		}
		s := &composeService{name: p[0].Value, line: p[0].Line, node: p[1]}
		labels := keyValues(lookupValue(s.node, "labels"))
		if v, ok := labels[discovery.LabelEnable]; ok {
			// As the watcher decides: "1" and "True" enable too.
			s.enabled, _ = discovery.Enabled(map[string]string{discovery.LabelEnable: v.value}, false)
		}
		s.proxy = isProxy(s)
		s.nets, s.netMode = serviceNetworks(s.node)
		services = append(services, s)
	}
	return root, services, nil
}

// SideBySide returns the findings of the Compose file data that keep a second
// replica of service from running beside the first: container_name and fixed
// host ports. Scaling up needs both replicas at once, and so does dlb rollout,
// which starts the new replicas before it stops the old: it refuses a service
// with such findings, and dlb lint reports them. A file without the service
// has none.
func SideBySide(name string, data []byte, service string) ([]Finding, error) {
	_, services, err := parse(name, data)
	if err != nil {
		return nil, err
	}
	l := &linter{file: name}
	for _, s := range services {
		if s.name == service {
			l.checkSideBySide(s)
		}
	}
	return l.findings, nil
}

// checkSideBySide is SideBySide's check of one service.
func (l *linter) checkSideBySide(s *composeService) {
	l.checkPorts(s)
	l.checkContainerName(s)
}

// linter collects the findings of one file.
type linter struct {
	file     string
	findings []Finding
}

// add records a finding on service s at the line of key node k, or of the service
// when k is nil.
func (l *linter) add(s *composeService, k *yaml.Node, key, msg, fix string) {
	line := s.line
	if k != nil {
		line = k.Line
	}
	l.findings = append(l.findings, Finding{File: l.file, Line: line, Service: s.name, Key: key, Message: msg, Fix: fix})
}

// checkPorts flags host ports on an app: the second replica cannot bind them.
func (l *linter) checkPorts(s *composeService) {
	k, v := lookup(s.node, "ports")
	if k == nil || v == nil || v.Kind != yaml.SequenceNode {
		return
	}
	var fixed, ranges []string
	for _, e := range v.Content {
		e = deref(e, 0)
		var host, text string
		switch {
		case e == nil:
			continue
		case e.Kind == yaml.ScalarNode:
			host, text = shortHostPort(e.Value), e.Value
		case e.Kind == yaml.MappingNode:
			if p := lookupValue(e, "published"); p != nil && p.Kind == yaml.ScalarNode && p.ShortTag() != "!!null" {
				host, text = p.Value, p.Value
				if t := lookupValue(e, "target"); t != nil {
					text += ":" + t.Value
				}
			}
		}
		switch {
		case host == "":
		case strings.Contains(host, "-") && !strings.Contains(host, "${"):
			ranges = append(ranges, text)
		default:
			fixed = append(fixed, text)
		}
	}
	fix := fmt.Sprintf("Remove ports: from %s; dlb publishes the port.", s.name)
	switch {
	case len(fixed) > 0:
		l.add(s, k, "ports", fmt.Sprintf("publishes host port %s; with --scale 2 or dlb rollout the second replica fails with \"port is already allocated\"", strings.Join(append(fixed, ranges...), ", ")), fix)
	case len(ranges) > 0:
		l.add(s, k, "ports", fmt.Sprintf("publishes host port range %s; each replica takes one, so scaling beyond the range fails with \"port is already allocated\"", strings.Join(ranges, ", ")), fix)
	}
}

// checkContainerName flags container_name on an app: container names are unique.
func (l *linter) checkContainerName(s *composeService) {
	k, v := lookup(s.node, "container_name")
	if k == nil || v == nil || v.ShortTag() == "!!null" {
		return
	}
	l.add(s, k, "container_name", fmt.Sprintf("fixes the container name to %q; container names are unique, so Compose cannot start a second replica (--scale 2, dlb rollout)", v.Value),
		fmt.Sprintf("Remove container_name: from %s; dlb finds replicas by label, not by name.", s.name))
}

// checkExpose flags an app that exposes several ports without saying which one
// dlb should use.
func (l *linter) checkExpose(s *composeService) {
	if _, ok := keyValues(lookupValue(s.node, "labels"))["dlb.port"]; ok {
		return
	}
	k, v := lookup(s.node, "expose")
	if k == nil || v == nil || v.Kind != yaml.SequenceNode {
		return
	}
	var ports []string
	count := 0
	for _, e := range v.Content {
		if e = deref(e, 0); e == nil || e.Kind != yaml.ScalarNode {
			continue
		}
		ports = append(ports, e.Value)
		count += portCount(e.Value)
	}
	if count < 2 {
		return
	}
	first, _, _ := strings.Cut(strings.Split(ports[0], "-")[0], "/")
	l.add(s, k, "expose", fmt.Sprintf("exposes %d ports (%s) and has no dlb.port label, so dlb cannot tell which one to balance", count, strings.Join(ports, ", ")),
		fmt.Sprintf("Add the label dlb.port: \"%s\" to %s, naming the port it serves HTTP on.", first, s.name))
}

// checkSocket flags a dlb service that can reach no Docker engine: it needs the
// socket mounted, or DOCKER_HOST pointing elsewhere (e.g. a socket proxy).
func (l *linter) checkSocket(s *composeService) {
	if _, ok := keyValues(lookupValue(s.node, "environment"))["DOCKER_HOST"]; ok {
		return
	}
	k, v := lookup(s.node, "volumes")
	if v != nil && v.Kind == yaml.SequenceNode {
		for _, e := range v.Content {
			src := ""
			switch e = deref(e, 0); {
			case e == nil:
			case e.Kind == yaml.ScalarNode:
				src = splitColons(e.Value)[0]
			case e.Kind == yaml.MappingNode:
				if n := lookupValue(e, "source"); n != nil {
					src = n.Value
				}
			}
			if strings.Contains(src, "docker.sock") {
				return
			}
		}
	}
	l.add(s, k, "volumes", "does not mount the Docker socket and sets no DOCKER_HOST, so dlb sees no containers and no events",
		fmt.Sprintf("Add - /var/run/docker.sock:/var/run/docker.sock:ro to volumes: of %s, or set DOCKER_HOST in its environment: (e.g. to a socket proxy).", s.name))
}

// checkNetworkFlag flags a dlb service whose --network (or DLB_NETWORK) names no
// network of the file: no key of the top-level networks: nor "default", as is,
// as <project>_<key> or as its name: override. Values with ${...} are not checked.
func (l *linter) checkNetworkFlag(s *composeService, keys []string, names map[string]string) {
	val, node, key := networkSetting(s.node)
	if node == nil || val == "" || strings.Contains(val, "$") {
		return
	}
	for _, k := range keys {
		if val == k || val == names[k] || len(val) > len(k)+1 && strings.HasSuffix(val, "_"+k) && names[k] == "" {
			return
		}
	}
	want := keys[0] // suggest a network dlb is on, else the file's first
	for _, n := range s.nets {
		if slices.Contains(keys, n) {
			want = n
			break
		}
	}
	setting := "--network"
	if key == "environment" {
		setting = "DLB_NETWORK"
	}
	hint := "Compose creates it as <project>_" + want
	if names[want] != "" {
		want, hint = names[want], "the name: of network "+want
	}
	l.add(s, node, key, fmt.Sprintf("%s %q names no network of this file (it has: %s), so dlb would find no replicas", setting, val, strings.Join(keys, ", ")),
		fmt.Sprintf("Set %s to %s (%s), or declare %s under the top-level networks:.", setting, want, hint, val))
}

// checkSharedNetwork flags an app that shares no network with any dlb service of
// the file. Services with network_mode: are not checked.
func (l *linter) checkSharedNetwork(s *composeService, proxies []*composeService) {
	if s.netMode || len(proxies) == 0 {
		return
	}
	var proxyNames, proxyNets []string
	for _, p := range proxies {
		if p.netMode {
			return
		}
		for _, n := range p.nets {
			if slices.Contains(s.nets, n) {
				return
			}
			if !slices.Contains(proxyNets, n) {
				proxyNets = append(proxyNets, n)
			}
		}
		proxyNames = append(proxyNames, p.name)
	}
	k, _ := lookup(s.node, "networks")
	l.add(s, k, "networks", fmt.Sprintf("%s is on %s and %s on %s; they share no network, so dlb cannot reach its replicas",
		s.name, strings.Join(s.nets, ", "), strings.Join(proxyNames, ", "), strings.Join(proxyNets, ", ")),
		fmt.Sprintf("Add %s to the networks: of %s (or put %s on one of %s's networks).", proxyNets[0], s.name, proxyNames[0], s.name))
}

// isProxy reports whether s is dlb itself: its image's repository name (the last
// path element, without tag or digest) is "dlb", e.g. dlb:dev or ghcr.io/x/dlb:1;
// or it has no image: and is named "dlb".
func isProxy(s *composeService) bool {
	img := lookupValue(s.node, "image")
	if img == nil || img.Kind != yaml.ScalarNode || img.Value == "" {
		return s.name == "dlb"
	}
	ref, _, _ := strings.Cut(img.Value, "@")
	ref = ref[strings.LastIndex(ref, "/")+1:]
	ref, _, _ = strings.Cut(ref, ":")
	return ref == "dlb"
}

// serviceNetworks returns the networks service n is on ("default" when it names
// none) and whether it sets network_mode: instead.
func serviceNetworks(n *yaml.Node) (nets []string, netMode bool) {
	if k, _ := lookup(n, "network_mode"); k != nil {
		return nil, true
	}
	v := lookupValue(n, "networks")
	switch {
	case v == nil:
	case v.Kind == yaml.SequenceNode:
		for _, e := range v.Content {
			if e = deref(e, 0); e != nil {
				nets = append(nets, e.Value)
			}
		}
	case v.Kind == yaml.MappingNode:
		for _, p := range pairs(v, 0) {
			nets = append(nets, p[0].Value)
		}
	}
	if len(nets) == 0 {
		nets = []string{"default"}
	}
	return nets, false
}

// networkSetting returns the --network value in the command: of service n (string
// or list form, "--network X" or "--network=X"), else DLB_NETWORK from its
// environment:, with the node to report and its key; a nil node when neither is set.
func networkSetting(n *yaml.Node) (val string, node *yaml.Node, key string) {
	cmd := lookupValue(n, "command")
	var args []*yaml.Node // one node per word, for lines
	switch {
	case cmd == nil:
	case cmd.Kind == yaml.ScalarNode:
		for _, w := range strings.Fields(cmd.Value) {
			args = append(args, &yaml.Node{Kind: yaml.ScalarNode, Value: strings.Trim(w, `"'`), Line: cmd.Line})
		}
	case cmd.Kind == yaml.SequenceNode:
		for _, e := range cmd.Content {
			if e = deref(e, 0); e != nil && e.Kind == yaml.ScalarNode {
				args = append(args, e)
			}
		}
	}
	for i, a := range args {
		flag, v, hasValue := strings.Cut(a.Value, "=")
		if flag != "--network" && flag != "-network" {
			continue
		}
		if hasValue {
			return v, a, "command"
		}
		if i+1 < len(args) {
			return args[i+1].Value, args[i+1], "command"
		}
	}
	if e, ok := keyValues(lookupValue(n, "environment"))["DLB_NETWORK"]; ok {
		return e.value, &yaml.Node{Line: e.line}, "environment"
	}
	return "", nil, ""
}

// shortHostPort returns the host port of a short-syntax ports: entry
// ("[IP:]HOST:CONTAINER[/PROTO]"), or "" when it publishes none or a random one.
func shortHostPort(s string) string {
	if i := strings.LastIndex(s, "/"); i >= 0 && !strings.Contains(s[i:], "}") {
		s = s[:i]
	}
	if strings.HasPrefix(s, "[") { // [IPv6]:HOST:CONTAINER
		if i := strings.Index(s, "]:"); i >= 0 {
			s = s[i+2:]
		}
	}
	parts := splitColons(s)
	if len(parts) < 2 {
		return ""
	}
	return parts[len(parts)-2]
}

// splitColons splits s at the colons outside ${...}, so that "${P:-8000}:80"
// gives "${P:-8000}" and "80".
func splitColons(s string) []string {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '$' && i+1 < len(s) && s[i+1] == '{':
			depth++
			i++
		case s[i] == '}' && depth > 0:
			depth--
		case s[i] == ':' && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// portCount returns how many ports an expose: entry ("80", "80/tcp",
// "8000-8002") stands for; 1 when it cannot tell.
func portCount(s string) int {
	s, _, _ = strings.Cut(s, "/")
	lo, hi, ok := strings.Cut(s, "-")
	a, err1 := strconv.Atoi(lo)
	b, err2 := strconv.Atoi(hi)
	if !ok || err1 != nil || err2 != nil || b < a {
		return 1
	}
	return b - a + 1
}

// kv is one entry of a labels: or environment: block.
type kv struct {
	value string
	line  int
}

// keyValues reads a labels:/environment: block, a mapping or a list of "K=V" (a
// bare "K" gives an empty value), into a map by key.
func keyValues(n *yaml.Node) map[string]kv {
	m := map[string]kv{}
	switch {
	case n == nil:
	case n.Kind == yaml.SequenceNode:
		for _, e := range n.Content {
			if e = deref(e, 0); e != nil && e.Kind == yaml.ScalarNode {
				k, v, _ := strings.Cut(e.Value, "=")
				m[strings.TrimSpace(k)] = kv{strings.TrimSpace(v), e.Line}
			}
		}
	case n.Kind == yaml.MappingNode:
		for _, p := range pairs(n, 0) {
			v := ""
			if p[1] != nil && p[1].ShortTag() != "!!null" {
				v = p[1].Value
			}
			m[p[0].Value] = kv{v, p[0].Line}
		}
	}
	return m
}

// maxDepth bounds alias and merge-key resolution, so that a self-referencing
// anchor cannot loop.
const maxDepth = 32

// deref returns n with documents unwrapped and aliases followed; nil for nil.
func deref(n *yaml.Node, depth int) *yaml.Node {
	for ; n != nil && depth < maxDepth; depth++ {
		switch {
		case n.Kind == yaml.AliasNode:
			n = n.Alias
		case n.Kind == yaml.DocumentNode && len(n.Content) > 0:
			n = n.Content[0]
		case n.Kind == yaml.DocumentNode:
			return nil
		default:
			return n
		}
	}
	return n
}

// pairs returns the key and (dereferenced) value nodes of mapping n in order, with
// YAML merge keys ("<<: *anchor") expanded; keys written in n win over merged
// ones. It returns nil when n is no mapping.
func pairs(n *yaml.Node, depth int) [][2]*yaml.Node {
	n = deref(n, 0)
	if n == nil || n.Kind != yaml.MappingNode || depth > maxDepth {
		return nil
	}
	var own, merged [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1], 0)
		if k.ShortTag() != "!!merge" {
			own = append(own, [2]*yaml.Node{k, v})
			continue
		}
		srcs := []*yaml.Node{v}
		if v != nil && v.Kind == yaml.SequenceNode {
			srcs = v.Content
		}
		for _, src := range srcs {
			merged = append(merged, pairs(src, depth+1)...)
		}
	}
	seen := map[string]bool{}
	for _, p := range own {
		seen[p[0].Value] = true
	}
	for _, p := range merged {
		if !seen[p[0].Value] {
			seen[p[0].Value] = true
			own = append(own, p)
		}
	}
	return own
}

// lookup returns the key and value nodes of key in mapping n; nil, nil when absent.
func lookup(n *yaml.Node, key string) (k, v *yaml.Node) {
	for _, p := range pairs(n, 0) {
		if p[0].Value == key {
			return p[0], p[1]
		}
	}
	return nil, nil
}

// lookupValue returns the value node of key in mapping n, or nil.
func lookupValue(n *yaml.Node, key string) *yaml.Node {
	_, v := lookup(n, key)
	return v
}

// yamlLineRE finds the line number in a yaml.v3 error ("yaml: line 5: ...").
var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlError turns a yaml.v3 parse error into "name:line: ..." naming the fix.
// yaml.v3 reports scanner errors at their line but parser errors at the start of
// the enclosing block, so the message says "at or after"; it leaves out line 1,
// and errors on bytes that are not text, whose line is found here.
func yamlError(name string, data []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = strings.TrimPrefix(err.Error(), m[0])
	} else if i := badByte(data); i >= 0 {
		line += strings.Count(string(data[:i]), "\n")
	}
	return fmt.Errorf("%s:%d: cannot parse YAML: %s; fix the YAML syntax at or after line %d", name, line, msg, line)
}

// badByte returns the offset of the first byte that is not valid UTF-8 text (a
// control character other than tab, CR or LF, or a bad encoding), or -1.
func badByte(data []byte) int {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 || r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0x7f {
			return i
		}
		i += size
	}
	return -1
}
