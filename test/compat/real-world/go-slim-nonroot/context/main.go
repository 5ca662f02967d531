package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

var version = "unset"

func main() {
	name := flag.String("name", "nobody", "who to greet")
	health := flag.Bool("health", false, "health check: exit 0 when the greeting file is readable")
	flag.Parse()
	text, err := os.ReadFile("greeting.txt")
	if *health {
		if err != nil {
			os.Exit(1)
		}
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	wd, _ := os.Getwd()
	fmt.Printf("%s, %s! (greeter %s)\n", strings.TrimSpace(string(text)), *name, version)
	fmt.Printf("uid=%d gid=%d cwd=%s\n", os.Getuid(), os.Getgid(), wd)
}
