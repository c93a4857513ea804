module github.com/megaws/megaws/bench

go 1.26

require github.com/megaws/megaws v0.0.0

replace github.com/megaws/megaws => ../
