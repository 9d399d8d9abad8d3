// Command chihaya is the BitTorrent tracker daemon: it reads one YAML
// configuration, wires the frontends, the middleware chain and the storage
// together, and serves until it is told to stop.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/chihaya/chihaya"
	"github.com/chihaya/chihaya/pkg/log"
)

// Set at build time:
//
//	go build -ldflags "-X main.version=v3.0.0 -X main.commit=$(git rev-parse HEAD)" ./cmd/chihaya
var (
	version = ""
	commit  = ""
)

// errReported is returned once an error has already been logged, so that
// main only sets the exit code.
var errReported = errors.New("already reported")

// validateTimeout bounds `chihaya validate`, which constructs (and stops)
// the store and the hooks.
const validateTimeout = 30 * time.Second

// The operator API reports the version this binary was built as.
func init() { chihaya.Version = versionString() }

func main() {
	if err := newRootCmd(os.Stdout, os.Stderr).Execute(); err != nil {
		if !errors.Is(err, errReported) {
			fmt.Fprintln(os.Stderr, "chihaya:", err)
		}
		os.Exit(1)
	}
}

type options struct {
	configPath string
	cpuProfile string
	debug      bool
	json       bool
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	var opts options
	root := &cobra.Command{
		Use:   "chihaya",
		Short: "BitTorrent tracker (HTTP and UDP)",
		Long: "chihaya serves the BitTorrent tracker protocols over HTTP and UDP.\n" +
			"Send SIGUSR1 or SIGHUP to reload the hooks; SIGINT or SIGTERM to stop.",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			log.Setup(stderr, log.Options{JSON: opts.json, Debug: opts.debug})
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.cpuProfile != "" {
				stop, err := startCPUProfile(opts.cpuProfile)
				if err != nil {
					return err
				}
				defer stop()
			}
			if err := serve(opts.configPath); err != nil {
				logrus.WithError(err).Error("chihaya failed")
				return errReported
			}
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&opts.configPath, "config", "/etc/chihaya.yaml", "location of the configuration file")
	pf.BoolVar(&opts.debug, "debug", false, "log at debug level")
	pf.BoolVar(&opts.json, "json", false, "log JSON lines instead of text")
	// Upstream's flag: a service unit written for upstream may pass it.
	root.Flags().StringVar(&opts.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")

	root.AddCommand(&cobra.Command{
		Use:   "validate",
		Short: "Check a configuration file without serving",
		Long: "validate runs the start-up configuration code (decode, defaults, validation,\n" +
			"construction of the store and the hooks) without binding any port.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(context.Background(), validateTimeout)
			defer cancel()
			warnings, err := chihaya.Check(ctx, opts.configPath)
			if err != nil {
				return err
			}
			for _, w := range warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "configuration OK")
			return nil
		},
	})

	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Fprintln(cmd.OutOrStdout(), versionString())
		},
	})
	return root
}

// versionString reports what was built: the -ldflags values when the
// release build set them, otherwise what the Go toolchain recorded (module
// version and VCS revision).
func versionString() string {
	v, c, dirty := version, commit, false
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" && info.Main.Version != "" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				if c == "" {
					c = s.Value
				}
			case "vcs.modified":
				dirty = s.Value == "true" && commit == ""
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if c == "" {
		c = "unknown"
	}
	if dirty {
		c += "-dirty"
	}
	return fmt.Sprintf("chihaya %s (commit %s, %s %s/%s)", v, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// startCPUProfile profiles the process into path until the returned
// function is called, when the daemon has stopped.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	logrus.WithField("file", path).Info("writing a CPU profile until the tracker stops")
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			logrus.WithError(err).Error("cpuprofile: close")
		}
	}, nil
}
