<?php
// GET /hello-php?name=you
function handler($event) {
    return ["hello" => $event["query"]["name"] ?? "world", "runtime" => "php"];
}
