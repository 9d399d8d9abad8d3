package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a real Redis Cluster started by a test: masters with
// replicas, every node a redis-server on free loopback ports (its client
// port and its cluster bus port).
type Cluster struct {
	// Nodes are all the nodes, the masters first (as created: a replica
	// may be promoted later).
	Nodes []*Server
	// Masters is how many of Nodes were created masters.
	Masters int
}

// Addrs returns the client addresses of every node.
func (c *Cluster) Addrs() []string {
	a := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		a[i] = n.Addr
	}
	return a
}

// StartCluster starts masters × (1 + replicas) nodes with
// `cluster-enabled yes`, joins them with `redis-cli --cluster create`, and
// waits until every node reports the cluster ok. Every node is killed when
// the test ends. conf lines are added to every node's configuration.
func StartCluster(t testing.TB, masters, replicas int, conf ...string) *Cluster {
	t.Helper()
	cli := Program(t, "redis-cli")
	c := &Cluster{Masters: masters}
	for range masters * (1 + replicas) {
		// cluster-node-timeout: how long a node may go unanswered before
		// the others declare it failed (and, for a master, fail it over,
		// the cluster down meanwhile). A test machine that runs several
		// suites at once under -race starves a node for more than a
		// second now and then, which took a live cluster down mid-test
		// at 1000 ms; at 5 s a killed master is still replaced in about
		// 6-7 s (the e2e failover test allows 30).
		lines := append([]string{
			"cluster-enabled yes", "cluster-config-file nodes.conf",
			"cluster-node-timeout 5000", "cluster-port " + strconv.Itoa(FreePort(t)),
			"cluster-replica-validity-factor 0", "cluster-allow-replica-migration no",
		}, conf...)
		c.Nodes = append(c.Nodes, Start(t, "redis-server", lines...))
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK(t, 60*time.Second)
	return c
}

// WaitOK waits until every live node reports cluster_state:ok and knows
// the same number of masters with slots.
func (c *Cluster) WaitOK(t testing.TB, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		bad := ""
		for _, n := range c.Nodes {
			select {
			case <-n.exited:
				continue
			default:
			}
			cl := n.client()
			info, err := cl.ClusterInfo(context.Background()).Result()
			cl.Close()
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				bad = fmt.Sprintf("%s: %v %q", n.Addr, err, info)
				break
			}
		}
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster not ok within %s: %s", within, bad)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Client returns a cluster client for a test's own checks; it is closed
// when the test ends.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), Protocol: 2, DisableIdentity: true,
		ReadTimeout: 15 * time.Second, MaxRedirects: 16})
	t.Cleanup(func() { cl.Close() })
	return cl
}

func (s *Server) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.Addr, DialTimeout: time.Second, ReadTimeout: 5 * time.Second,
		MaxRetries: -1, Protocol: 2, DisableIdentity: true})
}

// Exited reports whether the program has exited.
func (s *Server) Exited() bool {
	select {
	case <-s.exited:
		return true
	default:
		return false
	}
}
