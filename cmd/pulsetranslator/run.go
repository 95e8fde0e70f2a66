package main

import (
	"fmt"
	"io"
)

func runCommand(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "not yet")
	return 1
}
