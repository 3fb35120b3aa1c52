<?php
function handler($event) {
    return ["hello" => "world", "runtime" => "php"];
}
