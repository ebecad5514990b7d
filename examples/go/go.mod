module example.com/users

go 1.19

require (
	dblease.dev/dblease v0.0.0
	github.com/lib/pq v1.10.7
)

// Offline, from this repository and Debian 12 (apt-get install golang-go
// golang-github-lib-pq-dev); with a module proxy, drop the lib/pq line.
replace dblease.dev/dblease => ../../bindings/go

replace github.com/lib/pq => /usr/share/gocode/src/github.com/lib/pq
