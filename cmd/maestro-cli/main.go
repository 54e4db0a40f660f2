// Command maestro-cli is the spike's command-line client for Maestro
// ManifestWorks. Its commands arrive with their own issue; until then it
// says so instead of pretending.
package main

import (
	"fmt"
	"os"
)

var version = "dev"

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "version" || os.Args[1] == "--version") {
		fmt.Println(version)
		return
	}
	fmt.Fprintln(os.Stderr, "maestro-cli: not implemented yet (see the maestro-cli issue); only 'version' works")
	os.Exit(2)
}
