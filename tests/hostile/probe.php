<?php
// A hostile PHP handler: ?try=read|exec|uid&path=P reports what the kernel answered.
function handler($event) {
    $q = $event["query"];
    switch ($q["try"] ?? "") {
        case "read":
            $data = @file_get_contents($q["path"]);
            return ["result" => $data === false ? (error_get_last()["message"] ?? "failed") : "read " . strlen($data) . " bytes"];
        case "exec":
            $out = @shell_exec($q["path"] . " 2>&1");
            return ["result" => $out === null || $out === false ? "failed" : $out];
        case "uid":
            return ["result" => posix_getuid()];
    }
    return ["result" => "unknown attempt"];
}
