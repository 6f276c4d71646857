// compose-check loads a Compose file with compose-go, the loader `docker compose` itself
// uses, so a file that passes here parses, interpolates and validates as Docker would
// read it. It prints the services (or, with -json, the normalized project) and exits 1
// on the first problem.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	args := os.Args[1:]
	asJSON := len(args) > 0 && args[0] == "-json"
	if asJSON {
		args = args[1:]
	}
	if len(args) < 1 {
		fmt.Fprintln(os.Stderr, "usage: compose-check [-json] docker-compose.yml [profile ...]")
		os.Exit(2)
	}
	file, err := filepath.Abs(args[0])
	if err != nil {
		fail(err)
	}
	opts, err := cli.NewProjectOptions(
		[]string{file},
		cli.WithWorkingDirectory(filepath.Dir(file)),
		cli.WithOsEnv,
		cli.WithDotEnv,
		cli.WithName("streams"),
		cli.WithProfiles(args[1:]),
	)
	if err != nil {
		fail(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	if asJSON {
		out, err := project.MarshalJSON()
		if err != nil {
			fail(err)
		}
		fmt.Println(string(out))
		return
	}
	names := project.ServiceNames()
	sort.Strings(names)
	for _, name := range names {
		service := project.Services[name]
		deps := make([]string, 0, len(service.DependsOn))
		for dep := range service.DependsOn {
			deps = append(deps, dep)
		}
		sort.Strings(deps)
		fmt.Printf("service %s depends_on=%v\n", name, deps)
	}
	fmt.Printf("compose OK: %d services\n", len(names))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "compose-check:", err)
	os.Exit(1)
}
