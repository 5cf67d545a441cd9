package discovery

import (
	"strings"
	"testing"
)

func TestFindContainerID(t *testing.T) {
	const id = "3b2a9c7f1e0d4c5b6a79881726354453627180910a1b2c3d4e5f60718293a4b5"
	mountinfo, cgroup := containerPaths[0].re, containerPaths[1].re
	for _, c := range []struct {
		name, text string
		in         int // which pattern
		want       string
	}{
		{"bridge network: /etc/hostname mounted from the container's directory", "1204 1189 8:1 /var/lib/docker/containers/" + id + "/hostname /etc/hostname rw,relatime - ext4 /dev/sda1 rw\n", 0, id},
		{"host network: /etc/hosts and resolv.conf still are", "22 26 0:20 / /proc rw - proc proc rw\n907 880 259:2 /docker/containers/" + id + "/resolv.conf /etc/resolv.conf rw - ext4 /dev/nvme0n1p2 rw\n", 0, id},
		{"no container", "21 26 0:20 / /proc rw,relatime - proc proc rw\n24 23 0:22 / /dev/shm rw - tmpfs tmpfs rw\n", 0, ""},
		{"the engine's host: another container's secrets and /dev/shm are mounted in its directory", "1301 44 0:61 / /var/lib/docker/containers/" + id + "/mounts/secrets rw,relatime - tmpfs tmpfs rw\n1302 44 0:62 / /var/lib/docker/containers/" + id + "/mounts/shm rw - tmpfs shm rw,size=65536k\n", 0, ""},
		{"a volume named like a container's directory is not one", "30 26 8:1 /srv/containers/abc/data /data rw - ext4 /dev/sda1 rw\n", 0, ""},
		{"cgroup v1", "12:pids:/docker/" + id + "\n11:memory:/docker/" + id + "\n", 1, id},
		{"cgroup v2, systemd driver", "0::/system.slice/docker-" + id + ".scope\n", 1, id},
		{"cgroup of a host process, with a 32-digit ID", "4:memory:/process_api/3220009102909dc1fcecd45d05d95aca\n0::/\n", 1, ""},
	} {
		re := mountinfo
		if c.in == 1 {
			re = cgroup
		}
		if got := findContainerID(strings.NewReader(c.text), re); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}
