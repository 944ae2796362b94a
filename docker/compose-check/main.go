// compose-check loads a Compose file the way `docker compose config` does, with no Docker engine:
// compose-go (the library inside Docker Compose v2) validates it against the compose-spec JSON
// schema it embeds, interpolates variables, checks cross-references (depends_on, volumes,
// networks, secrets) and resolves relative paths. It prints the resolved project as JSON.
//
//	compose-check -f docker/docker-compose.yml --env-file docker/.env.example
//
// Unlike the Compose CLI, it reads no variables from the calling environment: only --env-file
// (and the .env beside the Compose file when no --env-file is given), so a check is reproducible.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var files, envFiles list
	flag.Var(&files, "f", "Compose file (repeatable, later files override earlier ones)")
	flag.Var(&envFiles, "env-file", "file of variables for interpolation (repeatable)")
	flag.Parse()
	if len(files) == 0 {
		fmt.Fprintln(os.Stderr, "usage: compose-check -f compose.yml [--env-file FILE]...")
		os.Exit(2)
	}
	options, err := cli.NewProjectOptions(files,
		cli.WithEnvFiles(envFiles...), cli.WithDotEnv, cli.WithResolvedPaths(true))
	if err == nil {
		var out []byte
		project, loadErr := options.LoadProject(context.Background())
		if err = loadErr; err == nil {
			out, err = project.MarshalJSON()
			os.Stdout.Write(out)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "compose-check:", err)
		os.Exit(1)
	}
}
