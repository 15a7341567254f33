<#
.SYNOPSIS
    Start the tf-stack-monitor tray at login, or stop doing so (-Remove).
.DESCRIPTION
    Writes the HKCU Run value that `tf-stack-monitor autostart enable` writes:
    "<pythonw.exe>" -m monitor run   (pythonw.exe, so no console window opens).
    Prefer `tf-stack-monitor autostart enable|disable|status`; this is the same by hand.
.EXAMPLE
    .\install-autostart.ps1 -Python C:\Users\you\venvs\tfmon\Scripts\python.exe
.EXAMPLE
    .\install-autostart.ps1 -Remove
#>
param(
    [string]$Python = '',
    [switch]$Remove
)
$ErrorActionPreference = 'Stop'
$key = 'HKCU:\Software\Microsoft\Windows\CurrentVersion\Run'
$name = 'tf-stack-monitor'

if ($Remove) {
    Remove-ItemProperty -Path $key -Name $name -ErrorAction SilentlyContinue
    return
}
if (-not $Python) { $Python = (Get-Command python).Source }
$pythonw = Join-Path (Split-Path -Parent $Python) 'pythonw.exe'
if (-not (Test-Path $pythonw)) { $pythonw = $Python }
$value = '"{0}" -m monitor run' -f $pythonw
New-ItemProperty -Path $key -Name $name -PropertyType String -Value $value -Force | Out-Null
Write-Output "$name will start at login: $value"
