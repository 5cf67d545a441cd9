package discovery

import (
	"bufio"
	"io"
	"os"
	"regexp"
)

// containerPaths find a Docker container's ID (64 hex digits) in
// /proc/self/mountinfo, where the engine's files of the container
// (/etc/hostname, /etc/hosts, /etc/resolv.conf) are mounted from
// <data-root>/containers/<id>/ (the line's root, then its mount point),
// and in /proc/self/cgroup (cgroup v1, and v2 with the systemd driver),
// whose paths name docker/<id> or docker-<id>.scope. Only those mount
// points count: on the engine's own host the mount table also holds
// mounts of other containers under <data-root>/containers/<id>/ (a swarm
// task's secrets and configs, its /dev/shm), which name no container this
// process runs in.
var containerPaths = []struct {
	file string
	re   *regexp.Regexp
}{
	{"/proc/self/mountinfo", regexp.MustCompile(`^\S+ \S+ \S+ \S*/containers/([0-9a-f]{64})/\S* /etc/(?:hostname|hosts|resolv\.conf) `)},
	{"/proc/self/cgroup", regexp.MustCompile(`[/-]docker[/-]([0-9a-f]{64})(?:\.scope)?(?:/|$)`)},
}

// ContainerID returns the full ID of the Docker container this process
// runs in, read from /proc, or "" outside a container (or when /proc does
// not say). Unlike the host name it also works in network_mode: host,
// where the host name is the host's.
func ContainerID() string {
	for _, p := range containerPaths {
		f, err := os.Open(p.file)
		if err != nil {
			continue
		}
		id := findContainerID(f, p.re)
		f.Close()
		if id != "" {
			return id
		}
	}
	return ""
}

// findContainerID returns the first ID re finds in a line of r.
func findContainerID(r io.Reader, re *regexp.Regexp) string {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if m := re.FindSubmatch(sc.Bytes()); m != nil {
			return string(m[1])
		}
	}
	return ""
}
