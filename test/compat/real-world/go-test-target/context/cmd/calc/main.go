package main

import (
	"fmt"
	"os"
	"strings"

	"example.com/calc/calc"
)

func main() {
	v, err := calc.Eval(strings.Join(os.Args[1:], " "))
	if err != nil {
		fmt.Fprintln(os.Stderr, "calc:", err)
		os.Exit(2)
	}
	fmt.Println(v)
}
