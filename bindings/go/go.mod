module dblease.dev/dblease

go 1.19
