code.js
