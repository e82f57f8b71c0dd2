module local/tinyimage

go 1.26.0
